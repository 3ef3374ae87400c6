//! Prometheus text exposition of a merged `Counters` snapshot, through the `prometheus` crate's
//! model and `TextEncoder`. Dense families always show every series (zeros included) so dashboards
//! and alerts see stable series; sparse ones (ICMP errors, capture drops) show the series seen.

use crate::counters::Counters;
use crate::schema::*;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

struct Fam {
    f: MetricFamily,
    metrics: Vec<Metric>,
}

impl Fam {
    fn new(name: &str, help: &str, t: MetricType) -> Self {
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_help(help.to_string());
        f.set_field_type(t);
        Fam {
            f,
            metrics: Vec::new(),
        }
    }
    fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
        pairs
            .iter()
            .map(|(k, v)| {
                let mut l = LabelPair::default();
                l.set_name(k.to_string());
                l.set_value(v.to_string());
                l
            })
            .collect()
    }
    fn counter(&mut self, pairs: &[(&str, &str)], v: u64) {
        let mut m = Metric::from_label(Self::labels(pairs));
        let mut c = Counter::default();
        c.set_value(v as f64);
        m.set_counter(c);
        self.metrics.push(m);
    }
    fn gauge(&mut self, pairs: &[(&str, &str)], v: f64) {
        let mut m = Metric::from_label(Self::labels(pairs));
        let mut g = Gauge::default();
        g.set_value(v);
        m.set_gauge(g);
        self.metrics.push(m);
    }
    fn histogram(&mut self, pairs: &[(&str, &str)], c: &Counters, base: usize) {
        let mut m = Metric::from_label(Self::labels(pairs));
        let mut h = Histogram::default();
        h.set_sample_count(c.get(base));
        h.set_sample_sum(c.get(base + 1) as f64 * 1e-9);
        let mut cum = 0;
        let buckets = IAT_BOUNDS
            .iter()
            .enumerate()
            .map(|(i, &ub)| {
                cum += c.get(base + 2 + i);
                let mut b = Bucket::default();
                b.set_upper_bound(ub);
                b.set_cumulative_count(cum);
                b
            })
            .collect();
        h.set_bucket(buckets);
        m.set_histogram(h);
        self.metrics.push(m);
    }
    fn done(mut self, out: &mut Vec<MetricFamily>) {
        if !self.metrics.is_empty() {
            self.f.set_metric(std::mem::take(&mut self.metrics));
            out.push(self.f);
        }
    }
}

/// Static facts shown as an info metric (version, capture mode, clock).
#[derive(Clone, Debug, Default)]
pub struct Info {
    pub labels: Vec<(String, String)>,
}

/// Builds every metric family from a merged snapshot.
pub fn families(c: &Counters, info: &Info) -> Vec<MetricFamily> {
    use MetricType::{COUNTER, GAUGE, HISTOGRAM};
    let mut out = Vec::new();

    let mut f = Fam::new(
        "spanwatch_build_info",
        "spanwatch version and capture setup",
        GAUGE,
    );
    let mut pairs: Vec<(&str, &str)> = vec![("version", env!("CARGO_PKG_VERSION"))];
    pairs.extend(info.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    f.gauge(&pairs, 1.0);
    f.done(&mut out);

    let mut f = Fam::new("spanwatch_packets_total", "Packets taken in", COUNTER);
    for s in Source::ALL {
        f.counter(&[("source", s.as_str())], c.get(slot::packets(s)));
    }
    f.done(&mut out);
    let mut f = Fam::new(
        "spanwatch_bytes_total",
        "Bytes taken in (wire length)",
        COUNTER,
    );
    for s in Source::ALL {
        f.counter(&[("source", s.as_str())], c.get(slot::bytes(s)));
    }
    f.done(&mut out);

    let mut f = Fam::new(
        "spanwatch_sessions_total",
        "Sessions seen, counted once when their protocol is known by content",
        COUNTER,
    );
    for p in Proto::ALL {
        for (v6, v) in [(false, "4"), (true, "6")] {
            f.counter(
                &[("protocol", p.as_str()), ("ip_version", v)],
                c.get(slot::sessions(p, v6)),
            );
        }
    }
    f.done(&mut out);

    let mut f = Fam::new(
        "spanwatch_protocol_packets_total",
        "Packets carrying payload, by the protocol of their flow (counted once the flow is classified)",
        COUNTER,
    );
    for p in Proto::ALL {
        f.counter(
            &[("protocol", p.as_str())],
            c.get(slot::protocol_packets(p)),
        );
    }
    f.done(&mut out);

    let mut f = Fam::new(
        "spanwatch_ftp_logins_total",
        "Cleartext FTP USER+PASS pairs seen, by the reply to PASS",
        COUNTER,
    );
    for &o in LoginOutcome::ALL {
        f.counter(&[("outcome", o.as_str())], c.get(slot::ftp_login(o)));
    }
    f.done(&mut out);

    let mut f = Fam::new(
        "spanwatch_ftp_data_sessions_total",
        "FTP data connections linked to a control session",
        COUNTER,
    );
    for &m in DataMode::ALL {
        f.counter(&[("mode", m.as_str())], c.get(slot::ftp_data(m)));
    }
    f.done(&mut out);
    let mut f = Fam::new(
        "spanwatch_ftp_bruteforce_total",
        "Client/server pairs that reached 20 rejected FTP logins within 15 minutes (counted once per window)",
        COUNTER,
    );
    f.counter(&[], c.get(slot::FTP_BRUTEFORCE));
    f.done(&mut out);

    let mut f = Fam::new(
        "spanwatch_tls_handshakes_total",
        "TLS ClientHellos seen over TCP",
        COUNTER,
    );
    f.counter(&[], c.get(slot::TLS_HANDSHAKES));
    f.done(&mut out);
    let mut f = Fam::new(
        "spanwatch_tls_resumed_total",
        "TLS handshakes that resumed a session",
        COUNTER,
    );
    for &m in ResumeMethod::ALL {
        f.counter(&[("method", m.as_str())], c.get(slot::tls_resumed(m)));
    }
    f.done(&mut out);
    let mut f = Fam::new(
        "spanwatch_ocsp_stapled_total",
        "TLS handshakes carrying a CertificateStatus (stapled OCSP)",
        COUNTER,
    );
    f.counter(&[], c.get(slot::OCSP_STAPLED));
    f.done(&mut out);

    let mut f = Fam::new(
        "spanwatch_http_requests_total",
        "HTTP/1.x requests seen",
        COUNTER,
    );
    for &k in HttpKind::ALL {
        f.counter(&[("kind", k.as_str())], c.get(slot::http_request(k)));
    }
    f.done(&mut out);

    let mut f = Fam::new(
        "spanwatch_bfd_state_changes_total",
        "BFD session state transitions",
        COUNTER,
    );
    for &s in BfdState::ALL {
        f.counter(&[("state", s.as_str())], c.get(slot::bfd_state_change(s)));
    }
    f.done(&mut out);
    let mut f = Fam::new(
        "spanwatch_bfd_echo_packets_total",
        "BFD echo packets seen",
        COUNTER,
    );
    f.counter(&[], c.get(slot::BFD_ECHO));
    f.done(&mut out);

    let mut f = Fam::new(
        "spanwatch_ospf_packets_total",
        "OSPF packets by version and type",
        COUNTER,
    );
    for (v3, v) in [(false, "2"), (true, "3")] {
        for &t in OspfType::ALL {
            f.counter(
                &[("version", v), ("type", t.as_str())],
                c.get(slot::ospf_packets(v3, t)),
            );
        }
    }
    f.done(&mut out);

    let mut f = Fam::new(
        "spanwatch_icmp_errors_total",
        "ICMP errors, by the protocol of the packet they quote",
        COUNTER,
    );
    for &t in IcmpError::ALL {
        for p in Proto::ALL {
            let v = c.get(slot::icmp_error(t, p));
            if v > 0 {
                f.counter(&[("type", t.as_str()), ("protocol", p.as_str())], v);
            }
        }
    }
    f.done(&mut out);

    for (name, help, s) in [
        (
            "spanwatch_timestamp_negative_deltas_total",
            "Packets stamped earlier than the packet before them",
            slot::TS_NEGATIVE,
        ),
        (
            "spanwatch_timestamp_zero_deltas_total",
            "Packets stamped with the same time as the packet before them",
            slot::TS_ZERO,
        ),
        (
            "spanwatch_timestamp_impossible_spacing_total",
            "Packets closer to the previous one than their own wire time at the link speed",
            slot::TS_IMPOSSIBLE,
        ),
        (
            "spanwatch_timestamp_causality_violations_total",
            "TCP segments acknowledging data stamped later than themselves",
            slot::TS_CAUSALITY,
        ),
    ] {
        let mut f = Fam::new(name, help, COUNTER);
        for src in Source::ALL {
            f.counter(&[("source", src.as_str())], c.get(s + src as usize));
        }
        f.done(&mut out);
    }
    let mut f = Fam::new(
        "spanwatch_packet_interarrival_seconds",
        "Time between consecutive packets of one source (non-negative deltas)",
        HISTOGRAM,
    );
    for s in Source::ALL {
        f.histogram(&[("source", s.as_str())], c, slot::iat_hist(s));
    }
    f.done(&mut out);
    let mut f = Fam::new(
        "spanwatch_timestamp_negative_delta_seconds",
        "Size of negative timestamp deltas (absolute value)",
        HISTOGRAM,
    );
    for s in Source::ALL {
        f.histogram(&[("source", s.as_str())], c, slot::neg_hist(s));
    }
    f.done(&mut out);

    let mut f = Fam::new(
        "spanwatch_capture_dropped_total",
        "Packets lost before analysis, by cause",
        COUNTER,
    );
    for &r in DropReason::ALL {
        let file = slot::capture_dropped(r, None);
        f.counter(&[("reason", r.as_str()), ("queue", "file")], c.get(file));
        for q in 0..MAX_QUEUES {
            let v = c.get(slot::capture_dropped(r, Some(q)));
            if v > 0 {
                f.counter(&[("reason", r.as_str()), ("queue", &q.to_string())], v);
            }
        }
    }
    f.done(&mut out);

    let mut f = Fam::new("spanwatch_flows_active", "Flows held now", GAUGE);
    f.gauge(&[], c.get(slot::FLOWS_ACTIVE) as f64);
    f.done(&mut out);
    let mut f = Fam::new(
        "spanwatch_flows_evicted_total",
        "Flows dropped from the table",
        COUNTER,
    );
    for &r in EvictReason::ALL {
        f.counter(&[("reason", r.as_str())], c.get(slot::flows_evicted(r)));
    }
    f.done(&mut out);

    let mut f = Fam::new(
        "spanwatch_packets_not_analyzed_total",
        "Packets taken in but not analyzed as IP traffic, by cause",
        COUNTER,
    );
    for &e in DecodeError::ALL {
        f.counter(&[("reason", e.as_str())], c.get(slot::decode_error(e)));
    }
    f.done(&mut out);
    let mut f = Fam::new(
        "spanwatch_tunnel_packets_total",
        "Packets analyzed that came in a tunnel (a remote SPAN port's ERSPAN, VXLAN or Geneve; GRE; IP in IP), by the outermost tunnel's kind",
        COUNTER,
    );
    for &t in Tunnel::ALL {
        f.counter(&[("kind", t.as_str())], c.get(slot::tunnel_packets(t)));
    }
    f.done(&mut out);
    let mut f = Fam::new("spanwatch_ip_fragments_total", "IP fragments seen", COUNTER);
    for (v6, v) in [(false, "4"), (true, "6")] {
        f.counter(&[("ip_version", v)], c.get(slot::ip_fragments(v6)));
    }
    f.done(&mut out);
    let mut f = Fam::new(
        "spanwatch_ip_reassembled_total",
        "IP datagrams reassembled from fragments",
        COUNTER,
    );
    for (v6, v) in [(false, "4"), (true, "6")] {
        f.counter(&[("ip_version", v)], c.get(slot::ip_reassembled(v6)));
    }
    f.done(&mut out);
    let mut f = Fam::new(
        "spanwatch_stream_issues_total",
        "Bytes a bounded reassembly or line buffer had to give up on",
        COUNTER,
    );
    for &i in StreamIssue::ALL {
        f.counter(&[("reason", i.as_str())], c.get(slot::stream_issue(i)));
    }
    f.done(&mut out);
    let mut f = Fam::new(
        "spanwatch_events_dropped_total",
        "Events lost because the event writer fell behind",
        COUNTER,
    );
    f.counter(&[], c.get(slot::EVENTS_DROPPED));
    f.done(&mut out);
    out
}

/// The Prometheus text format of a snapshot.
pub fn render(c: &Counters, info: &Info) -> String {
    let mut buf = Vec::new();
    // Encoding into a Vec cannot fail on I/O; a model error would be a bug in `families`.
    TextEncoder::new()
        .encode(&families(c, info), &mut buf)
        .expect("valid metric families");
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_contract_names() {
        let mut c = Counters::new();
        c.add(slot::sessions(Proto::Ftp, true), 3);
        c.observe_ns(slot::iat_hist(Source::Pcap), 1500);
        let text = render(&c, &Info::default());
        assert!(text.contains("spanwatch_sessions_total{protocol=\"ftp\",ip_version=\"6\"} 3"));
        assert!(text.contains(
            "spanwatch_packet_interarrival_seconds_bucket{source=\"pcap\",le=\"0.000002\"} 1"
        ));
        assert!(text.contains("# TYPE spanwatch_flows_active gauge"));
    }
}
