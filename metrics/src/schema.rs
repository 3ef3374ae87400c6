//! The metrics contract of DESIGN.md §4 as code: every series spanwatch exports has a fixed slot in
//! one flat array of `u64`, and every label value comes from a closed enum here. Producers (workers,
//! the reader) only ever add to slots; the exposition turns slots back into names and labels. No label
//! value is ever taken from traffic, so every family is a bounded set.

/// Where packets came from (`source` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Pcap = 0,
    Xdp = 1,
}
impl Source {
    pub const ALL: [Source; 2] = [Source::Pcap, Source::Xdp];
    pub fn as_str(self) -> &'static str {
        ["pcap", "xdp"][self as usize]
    }
}

/// Session protocols (`protocol` label). Adding one: a variant here, its name in `NAMES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Ftp,
    FtpData,
    Ftps,
    Tls,
    Http,
    Dns,
    Mdns,
    Ssh,
    Bfd,
    Ospf,
    Smtp,
    Imap,
    Pop3,
    Ssdp,
    Icmp,
    OtherTcp,
    OtherUdp,
    OtherIp,
}
impl Proto {
    pub const COUNT: usize = 18;
    pub const ALL: [Proto; Proto::COUNT] = [
        Proto::Ftp,
        Proto::FtpData,
        Proto::Ftps,
        Proto::Tls,
        Proto::Http,
        Proto::Dns,
        Proto::Mdns,
        Proto::Ssh,
        Proto::Bfd,
        Proto::Ospf,
        Proto::Smtp,
        Proto::Imap,
        Proto::Pop3,
        Proto::Ssdp,
        Proto::Icmp,
        Proto::OtherTcp,
        Proto::OtherUdp,
        Proto::OtherIp,
    ];
    const NAMES: [&'static str; Proto::COUNT] = [
        "ftp",
        "ftp_data",
        "ftps",
        "tls",
        "http",
        "dns",
        "mdns",
        "ssh",
        "bfd",
        "ospf",
        "smtp",
        "imap",
        "pop3",
        "ssdp",
        "icmp",
        "other_tcp",
        "other_udp",
        "other_ip",
    ];
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
    pub fn from_name(s: &str) -> Option<Proto> {
        Self::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| Self::ALL[i])
    }
}

macro_rules! label_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($var),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            pub const COUNT: usize = [$($s),+].len();
            pub fn as_str(self) -> &'static str { [$($s),+][self as usize] }
        }
    };
}

label_enum!(
    /// `kind` of tunnel a packet came in (the outermost where tunnels nest).
    Tunnel {
        IpInIp = "ip_in_ip",
        Gre = "gre",
        Erspan = "erspan",
        Vxlan = "vxlan",
        Geneve = "geneve",
    }
);
label_enum!(
    /// `outcome` of a cleartext FTP login: the reply to PASS.
    LoginOutcome { Accepted = "accepted", Rejected = "rejected", Unknown = "unknown" }
);
label_enum!(
    /// `mode` of an FTP data connection: which command announced it.
    DataMode { Pasv = "pasv", Epsv = "epsv", Port = "port", Eprt = "eprt" }
);
label_enum!(
    /// `method` of a resumed TLS handshake.
    ResumeMethod { SessionId = "session_id", Ticket = "ticket", Psk = "psk" }
);
label_enum!(
    /// `kind` of an HTTP request.
    HttpKind { AcmeHttp01 = "acme_http01", Hkp = "hkp", Ocsp = "ocsp", Other = "other" }
);
label_enum!(
    /// BFD `state` field values (RFC 5880 §4.1).
    BfdState { AdminDown = "admin_down", Down = "down", Init = "init", Up = "up" }
);
label_enum!(
    /// ICMP/ICMPv6 error `type`.
    IcmpError {
        DestUnreachable = "dest_unreachable",
        TimeExceeded = "time_exceeded",
        ParameterProblem = "parameter_problem",
        PacketTooBig = "packet_too_big",
        Redirect = "redirect",
        SourceQuench = "source_quench",
    }
);
label_enum!(
    /// `reason` a packet was lost before analysis.
    DropReason {
        TruncatedRecord = "truncated_record",
        CorruptRecord = "corrupt_record",
        QueueFull = "queue_full",
        XdpRxDropped = "xdp_rx_dropped",
        XdpRxInvalidDescs = "xdp_rx_invalid_descs",
        XdpRxRingFull = "xdp_rx_ring_full",
        XdpFillRingEmpty = "xdp_fill_ring_empty",
    }
);
label_enum!(
    /// `reason` a flow left the table.
    EvictReason { Timeout = "timeout", Pressure = "pressure", Closed = "closed" }
);
label_enum!(
    /// `reason` a packet could not be decoded to a flow.
    DecodeError {
        Truncated = "truncated",
        Malformed = "malformed",
        UnsupportedLink = "unsupported_link",
        NonIp = "non_ip",
    }
);
label_enum!(
    /// OSPF packet `type` (RFC 2328 A.3.1, RFC 5340 A.3.1).
    OspfType {
        Hello = "hello",
        DbDescription = "db_description",
        LsRequest = "ls_request",
        LsUpdate = "ls_update",
        LsAck = "ls_ack",
    }
);
label_enum!(
    /// Why bytes went unanalyzed: a reassembly or line buffer gave up on them, or a tunnel
    /// packet came in fragments (reassembled, not opened).
    StreamIssue {
        OverlongLine = "overlong_line",
        Gap = "gap",
        OutOfOrderOverflow = "out_of_order_overflow",
        FragmentOverflow = "fragment_overflow",
        FragmentTimeout = "fragment_timeout",
        TunnelFragmented = "tunnel_fragmented",
    }
);

/// Queues a live capture may have; `queue="file"` is slot 0, queue q is slot q+1.
pub const MAX_QUEUES: usize = 64;
pub const QUEUE_SLOTS: usize = MAX_QUEUES + 1;

/// Upper bounds of the inter-arrival histogram, seconds: 10 ns to 10 s in 1-2-5 steps.
pub const IAT_BOUNDS: [f64; 28] = [
    1e-8, 2e-8, 5e-8, 1e-7, 2e-7, 5e-7, 1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3,
    2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1, 2e-1, 5e-1, 1.0, 2.0, 5.0, 10.0,
];
/// The same bounds in nanoseconds, for the hot path.
pub const IAT_BOUNDS_NS: [u64; 28] = [
    10,
    20,
    50,
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    1_000_000_000,
    2_000_000_000,
    5_000_000_000,
    10_000_000_000,
];
/// Slots of one histogram: count, sum (ns), then one non-cumulative count per bound.
pub const HIST_SLOTS: usize = 2 + IAT_BOUNDS.len();

/// Slot offsets. Each family is a dense block; `slot::*` functions compute the index within it.
pub mod slot {
    use super::*;
    pub const PACKETS: usize = 0;
    pub const BYTES: usize = PACKETS + 2;
    pub const SESSIONS: usize = BYTES + 2;
    pub const FTP_LOGINS: usize = SESSIONS + Proto::COUNT * 2;
    pub const FTP_DATA: usize = FTP_LOGINS + LoginOutcome::COUNT;
    pub const TLS_RESUMED: usize = FTP_DATA + DataMode::COUNT;
    pub const OCSP_STAPLED: usize = TLS_RESUMED + ResumeMethod::COUNT;
    pub const HTTP_REQUESTS: usize = OCSP_STAPLED + 1;
    pub const BFD_STATE_CHANGES: usize = HTTP_REQUESTS + HttpKind::COUNT;
    pub const ICMP_ERRORS: usize = BFD_STATE_CHANGES + BfdState::COUNT;
    pub const TS_NEGATIVE: usize = ICMP_ERRORS + IcmpError::COUNT * Proto::COUNT;
    pub const TS_ZERO: usize = TS_NEGATIVE + 2;
    pub const TS_IMPOSSIBLE: usize = TS_ZERO + 2;
    pub const TS_CAUSALITY: usize = TS_IMPOSSIBLE + 2;
    pub const IAT_HIST: usize = TS_CAUSALITY + 2;
    pub const NEG_HIST: usize = IAT_HIST + 2 * HIST_SLOTS;
    pub const CAPTURE_DROPPED: usize = NEG_HIST + 2 * HIST_SLOTS;
    pub const FLOWS_ACTIVE: usize = CAPTURE_DROPPED + DropReason::COUNT * QUEUE_SLOTS;
    pub const FLOWS_EVICTED: usize = FLOWS_ACTIVE + 1;
    pub const DECODE_ERRORS: usize = FLOWS_EVICTED + EvictReason::COUNT;
    pub const IP_FRAGMENTS: usize = DECODE_ERRORS + DecodeError::COUNT;
    pub const IP_REASSEMBLED: usize = IP_FRAGMENTS + 2;
    pub const STREAM_ISSUES: usize = IP_REASSEMBLED + 2;
    pub const TLS_HANDSHAKES: usize = STREAM_ISSUES + StreamIssue::COUNT;
    pub const BFD_ECHO: usize = TLS_HANDSHAKES + 1;
    pub const OSPF_PACKETS: usize = BFD_ECHO + 1;
    pub const EVENTS_DROPPED: usize = OSPF_PACKETS + 2 * OspfType::COUNT;
    pub const FTP_LINES: usize = EVENTS_DROPPED + 1;
    pub const PROTOCOL_PACKETS: usize = FTP_LINES + 1;
    pub const FTP_BRUTEFORCE: usize = PROTOCOL_PACKETS + Proto::COUNT;
    pub const TUNNEL_PACKETS: usize = FTP_BRUTEFORCE + 1;
    pub const TOTAL: usize = TUNNEL_PACKETS + Tunnel::COUNT;

    pub fn packets(s: Source) -> usize {
        PACKETS + s as usize
    }
    pub fn bytes(s: Source) -> usize {
        BYTES + s as usize
    }
    pub fn sessions(p: Proto, v6: bool) -> usize {
        SESSIONS + p as usize * 2 + v6 as usize
    }
    pub fn ftp_login(o: LoginOutcome) -> usize {
        FTP_LOGINS + o as usize
    }
    pub fn ftp_data(m: DataMode) -> usize {
        FTP_DATA + m as usize
    }
    pub fn tls_resumed(m: ResumeMethod) -> usize {
        TLS_RESUMED + m as usize
    }
    pub fn http_request(k: HttpKind) -> usize {
        HTTP_REQUESTS + k as usize
    }
    pub fn bfd_state_change(s: BfdState) -> usize {
        BFD_STATE_CHANGES + s as usize
    }
    pub fn icmp_error(t: IcmpError, p: Proto) -> usize {
        ICMP_ERRORS + t as usize * Proto::COUNT + p as usize
    }
    pub fn ts_negative(s: Source) -> usize {
        TS_NEGATIVE + s as usize
    }
    pub fn ts_zero(s: Source) -> usize {
        TS_ZERO + s as usize
    }
    pub fn ts_impossible(s: Source) -> usize {
        TS_IMPOSSIBLE + s as usize
    }
    pub fn ts_causality(s: Source) -> usize {
        TS_CAUSALITY + s as usize
    }
    pub fn iat_hist(s: Source) -> usize {
        IAT_HIST + s as usize * HIST_SLOTS
    }
    pub fn neg_hist(s: Source) -> usize {
        NEG_HIST + s as usize * HIST_SLOTS
    }
    /// `queue`: None for a file, Some(q) for live queue q (q < MAX_QUEUES).
    pub fn capture_dropped(r: DropReason, queue: Option<usize>) -> usize {
        let q = queue.map_or(0, |q| q.min(MAX_QUEUES - 1) + 1);
        CAPTURE_DROPPED + r as usize * QUEUE_SLOTS + q
    }
    pub fn flows_evicted(r: EvictReason) -> usize {
        FLOWS_EVICTED + r as usize
    }
    pub fn decode_error(e: DecodeError) -> usize {
        DECODE_ERRORS + e as usize
    }
    pub fn ip_fragments(v6: bool) -> usize {
        IP_FRAGMENTS + v6 as usize
    }
    pub fn ip_reassembled(v6: bool) -> usize {
        IP_REASSEMBLED + v6 as usize
    }
    pub fn stream_issue(i: StreamIssue) -> usize {
        STREAM_ISSUES + i as usize
    }
    pub fn protocol_packets(p: Proto) -> usize {
        PROTOCOL_PACKETS + p as usize
    }
    pub fn ospf_packets(v3: bool, t: OspfType) -> usize {
        OSPF_PACKETS + v3 as usize * OspfType::COUNT + t as usize
    }
    pub fn tunnel_packets(t: Tunnel) -> usize {
        TUNNEL_PACKETS + t as usize
    }
}
