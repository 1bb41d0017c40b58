//! Every diagnostic code this crate emits, with a one-line meaning.
//!
//! `F0xx` are errors (the filter cannot be loaded as written), `F1xx` are
//! warnings (the filter loads, but something in it is not honoured, or looks
//! wrong). Each code is exercised by a unit test (see `tests` in `lib.rs`).

/// No `<name>.conf` / `<name>.local` (nor `<name>.d/*`) exists.
pub const FILTER_NOT_FOUND: &str = "F001";
/// A file exists but cannot be read (I/O error or not UTF-8).
pub const FILE_UNREADABLE: &str = "F002";
/// An INI line is neither a section header, an option, a comment nor a continuation.
pub const INI_SYNTAX: &str = "F003";
/// An option appears before the first `[section]` header.
pub const INI_NO_SECTION: &str = "F004";
/// The same section header appears twice in one file.
pub const INI_DUPLICATE_SECTION: &str = "F005";
/// The same option appears twice in one section of one file.
pub const INI_DUPLICATE_OPTION: &str = "F006";
/// `%(name)s` refers to an option that is not defined.
pub const INTERP_MISSING: &str = "F007";
/// A `%` that is neither `%%` nor a well-formed `%(name)s`.
pub const INTERP_SYNTAX: &str = "F008";
/// `%(name)s` references nest deeper than 10 levels (usually a loop).
pub const INTERP_DEPTH: &str = "F009";
/// `<tag>` definitions refer to themselves and cannot be resolved.
pub const TAG_RECURSION: &str = "F010";
/// Filter argument (`name[opt=value, ...]`) has invalid syntax.
pub const ARG_SYNTAX: &str = "F011";
/// The filter has no `[Definition]` section.
pub const NO_DEFINITION: &str = "F012";
/// The filter defines no (non-empty) `failregex`.
pub const NO_FAILREGEX: &str = "F013";
/// `maxlines` is not an integer greater than zero.
pub const BAD_MAXLINES: &str = "F014";
/// `journalmatch` has unbalanced quotes.
pub const BAD_JOURNALMATCH: &str = "F015";

/// A file is larger than 4 MiB, or a value grows beyond 1 MiB while
/// `%(name)s` / `<tag>` references are expanded (usually a runaway loop).
pub const TOO_LARGE: &str = "F016";

/// `ignorecommand` is not supported: the command is not run, nothing is ignored by it.
pub const IGNORECOMMAND_UNSUPPORTED: &str = "F101";
/// `usedns` in a filter is not supported (no DNS look-ups); addresses are used as written.
pub const USEDNS_IGNORED: &str = "F102";
/// A `<tag>` in a regex is not defined anywhere and will be passed on literally.
pub const TAG_UNRESOLVED: &str = "F103";
/// Conditional sections/options (`[Definition?logtype=...]`) are ignored, as fail2ban's filter reader does.
pub const CONDITIONAL_IGNORED: &str = "F104";
/// An included file (`before`/`after`) does not exist (`.local` files excepted).
pub const INCLUDE_MISSING: &str = "F105";
/// A jail-level option (`maxretry`, `findtime`, `bantime`, …) in a filter is ignored.
pub const JAIL_OPTION_IGNORED: &str = "F106";

/// The table of all codes: (code, is_error, one-line meaning).
pub const ALL: &[(&str, bool, &str)] = &[
    (FILTER_NOT_FOUND, true, "filter not found (no .conf/.local file)"),
    (FILE_UNREADABLE, true, "file cannot be read (I/O error or not UTF-8)"),
    (INI_SYNTAX, true, "INI line is neither section, option, comment nor continuation"),
    (INI_NO_SECTION, true, "option before the first [section] header"),
    (INI_DUPLICATE_SECTION, true, "section appears twice in one file"),
    (INI_DUPLICATE_OPTION, true, "option appears twice in one section of one file"),
    (INTERP_MISSING, true, "%(name)s refers to an undefined option"),
    (INTERP_SYNTAX, true, "'%' not followed by '%' or a well-formed '(name)s'"),
    (INTERP_DEPTH, true, "%(name)s interpolation nested deeper than 10 levels"),
    (TAG_RECURSION, true, "<tag> definitions are self-referencing"),
    (ARG_SYNTAX, true, "invalid filter argument syntax name[opt=value, ...]"),
    (NO_DEFINITION, true, "no [Definition] section"),
    (NO_FAILREGEX, true, "no failregex defined"),
    (BAD_MAXLINES, true, "maxlines is not an integer greater than zero"),
    (BAD_JOURNALMATCH, true, "journalmatch has unbalanced quotes"),
    (TOO_LARGE, true, "file > 4 MiB or value > 1 MiB after expansion"),
    (IGNORECOMMAND_UNSUPPORTED, false, "ignorecommand is not supported and not run"),
    (USEDNS_IGNORED, false, "usedns is not supported in filters; ignored"),
    (TAG_UNRESOLVED, false, "undefined <tag> in a regex is kept literally"),
    (CONDITIONAL_IGNORED, false, "conditional section/option is ignored"),
    (INCLUDE_MISSING, false, "included file does not exist"),
    (JAIL_OPTION_IGNORED, false, "jail-level option in a filter is ignored"),
];
