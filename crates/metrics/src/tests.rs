use super::*;

#[test]
fn counters_gauges_and_families_render_exactly() {
    let reg = Registry::new();
    let up = reg.counter("stadtwache_up_total", "Starts.").unwrap();
    let lag = reg.gauge("stadtwache_lag_seconds", "Lag of the slowest source.").unwrap();
    let lines = reg.counter_vec("stadtwache_lines_total", "Lines read.", &["source"]).unwrap();
    up.inc();
    up.inc_by(2);
    lag.set(1.5);
    lag.add(-0.25);
    let sshd = lines.with(&["sshd"]);
    sshd.inc();
    sshd.inc();
    lines.with(&["nginx"]).inc();
    // The same label set is the same series.
    lines.with(&["sshd"]).inc();
    let expected = "\
# HELP stadtwache_up_total Starts.
# TYPE stadtwache_up_total counter
stadtwache_up_total 3
# HELP stadtwache_lag_seconds Lag of the slowest source.
# TYPE stadtwache_lag_seconds gauge
stadtwache_lag_seconds 1.25
# HELP stadtwache_lines_total Lines read.
# TYPE stadtwache_lines_total counter
stadtwache_lines_total{source=\"sshd\"} 3
stadtwache_lines_total{source=\"nginx\"} 1
";
    assert_eq!(reg.render(), expected);
}

#[test]
fn histogram_buckets_are_cumulative_with_inf_sum_and_count() {
    let reg = Registry::new();
    let h = reg.histogram("lat_seconds", "Latency.", &[0.1, 0.5, 1.0]).unwrap();
    for v in [0.05, 0.1, 0.3, 2.0, f64::NAN] {
        h.observe(v);
    }
    let expected = "\
# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{le=\"0.1\"} 2
lat_seconds_bucket{le=\"0.5\"} 3
lat_seconds_bucket{le=\"1\"} 3
lat_seconds_bucket{le=\"+Inf\"} 4
lat_seconds_sum 2.45
lat_seconds_count 4
";
    assert_eq!(reg.render(), expected);
    assert_eq!(h.count(), 4);
}

#[test]
fn labelled_histogram_puts_le_last() {
    let reg = Registry::new();
    let hv = reg.histogram_vec("req_seconds", "Requests.", &["endpoint"], &[0.001]).unwrap();
    hv.with(&["auth"]).observe_duration(Duration::from_micros(500));
    let r = reg.render();
    assert!(r.contains("req_seconds_bucket{endpoint=\"auth\",le=\"0.001\"} 1\n"), "{r}");
    assert!(r.contains("req_seconds_bucket{endpoint=\"auth\",le=\"+Inf\"} 1\n"), "{r}");
    assert!(r.contains("req_seconds_sum{endpoint=\"auth\"} 0.0005\n"), "{r}");
    assert!(r.contains("req_seconds_count{endpoint=\"auth\"} 1\n"), "{r}");
}

#[test]
fn help_and_label_values_are_escaped() {
    let reg = Registry::new();
    let c = reg.counter_vec("x_total", "a \\ b\nc \"q\"", &["v"]).unwrap();
    c.with(&["a\"b\\c\nd"]).inc();
    let expected = "\
# HELP x_total a \\\\ b\\nc \"q\"
# TYPE x_total counter
x_total{v=\"a\\\"b\\\\c\\nd\"} 1
";
    assert_eq!(reg.render(), expected);
}

#[test]
fn cardinality_cap_sends_extra_label_sets_to_one_overflow_series_and_counts_them() {
    let reg = Registry::with_max_series(2);
    let c = reg.counter_vec("hits_total", "Hits.", &["rule"]).unwrap();
    c.with(&["a"]).inc();
    c.with(&["b"]).inc();
    for i in 0..10 {
        c.with(&[&format!("r{i}")]).inc();
    }
    // Existing label sets still get their own series.
    c.with(&["a"]).inc();
    let expected = "\
# HELP hits_total Hits.
# TYPE hits_total counter
hits_total{rule=\"a\"} 2
hits_total{rule=\"b\"} 1
hits_total{rule=\"__overflow__\"} 10
# HELP stadtwache_metrics_overflow_total Label sets that exceeded a family's cardinality cap and were counted in its overflow series.
# TYPE stadtwache_metrics_overflow_total counter
stadtwache_metrics_overflow_total{family=\"hits_total\"} 10
";
    assert_eq!(reg.render(), expected);
}

#[test]
fn bad_names_duplicates_and_buckets_are_errors_not_panics() {
    let reg = Registry::new();
    assert!(matches!(reg.counter("1abc", ""), Err(MetricsError::InvalidName(_))));
    assert!(matches!(reg.counter("a b", ""), Err(MetricsError::InvalidName(_))));
    assert!(matches!(reg.counter_vec("ok", "", &["__x"]), Err(MetricsError::InvalidLabel(_))));
    assert!(matches!(reg.histogram_vec("h", "", &["le"], &[1.0]), Err(MetricsError::InvalidLabel(_))));
    assert!(matches!(reg.histogram("h", "", &[1.0, 1.0]), Err(MetricsError::InvalidBuckets { .. })));
    assert!(matches!(reg.histogram("h", "", &[]), Err(MetricsError::InvalidBuckets { .. })));
    assert!(matches!(reg.histogram("h", "", &[f64::NAN]), Err(MetricsError::InvalidBuckets { .. })));
    reg.counter("dup", "").unwrap();
    assert!(matches!(reg.gauge("dup", ""), Err(MetricsError::Duplicate(_))));
    assert!(matches!(reg.counter(OVERFLOW_FAMILY, ""), Err(MetricsError::Duplicate(_))));
    // Wrong number of label values: padded/cut, no panic.
    let v = reg.counter_vec("two", "", &["a", "b"]).unwrap();
    v.with(&["x"]).inc();
    v.with(&["x", "y", "z"]).inc();
    let r = reg.render();
    assert!(r.contains("two{a=\"x\",b=\"\"} 1\n"), "{r}");
    assert!(r.contains("two{a=\"x\",b=\"y\"} 1\n"), "{r}");
}

#[test]
fn concurrent_updates_are_all_counted() {
    let reg = Arc::new(Registry::new());
    let c = reg.counter_vec("c_total", "", &["t"]).unwrap();
    let h = reg.histogram("h", "", LATENCY_BUCKETS).unwrap();
    let g = reg.gauge("g", "").unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (c, h, g) = (c.clone(), h.clone(), g.clone());
            std::thread::spawn(move || {
                let mine = c.with(&[if t % 2 == 0 { "even" } else { "odd" }]);
                for _ in 0..10_000 {
                    mine.inc();
                    h.observe(0.001);
                    g.add(1.0);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(c.with(&["even"]).get(), 20_000);
    assert_eq!(c.with(&["odd"]).get(), 20_000);
    assert_eq!(h.count(), 40_000);
    assert_eq!(g.get(), 40_000.0);
    assert!(reg.render().contains("h_count 40000\n"));
}
