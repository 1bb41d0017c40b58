//! stadtwache-fail2ban (work in progress).
