//! Helpers for real-process tests: workspace binaries, firmware-sim and timemaster processes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use ttproto::v1;

/// A child process killed on drop.
pub struct Proc(pub Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Path of a workspace binary, building it (same profile) if this test run did not.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<()>> = OnceLock::new();
    let dir = Path::new(env!("CARGO_BIN_EXE_timemaster"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = dir.join(bin);
    let _g = BUILT.get_or_init(Default::default).lock().unwrap();
    if !path.exists() {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", package, "--bin", bin]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "building {bin}");
    }
    path
}

pub fn timemaster_bin() -> &'static str {
    env!("CARGO_BIN_EXE_timemaster")
}

/// A firmware-sim process and its paths.
pub struct Sim {
    pub proc: Proc,
    pub dir: PathBuf,
}

impl Sim {
    pub fn start(dir: &Path, scenario: &str) -> Sim {
        std::fs::create_dir_all(dir).unwrap();
        let sc = dir.join("scenario.toml");
        std::fs::write(&sc, scenario).unwrap();
        let mut child = Command::new(workspace_bin("firmware-sim", "firmware-sim"))
            .arg("run")
            .arg("--scenario")
            .arg(&sc)
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("\"ready\""), "{line}");
        Sim {
            proc: Proc(child),
            dir: dir.to_path_buf(),
        }
    }

    pub fn p(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// TOML for a GPS master on this simulator's devices.
    pub fn gps_sections(&self, with_atomic: bool) -> String {
        let mut s = format!(
            "[gps]\nnmea-device = \"{}\"\ncable-delay-ns = 50\npps = {{ source = \"sock\", path = \"{}\" }}\n",
            self.p("gps"),
            self.p("pps.sock")
        );
        if with_atomic {
            s.push_str(&self.atomic_section());
        }
        s
    }

    pub fn atomic_section(&self) -> String {
        format!(
            "[atomic]\ntelemetry-device = \"{}\"\ndrift-ppt = 100\npps = {{ source = \"sock\", path = \"{}\" }}\nlock-line = {{ source = \"file\", path = \"{}\" }}\n",
            self.p("atomic"),
            self.p("atomic-pps.sock"),
            self.p("lock.gpio")
        )
    }

    /// Realtime (ns) of the first pulse the simulator sent, from its truth log.
    pub fn first_pulse_ns(&self) -> Option<i64> {
        std::fs::read_to_string(self.dir.join("truth.jsonl"))
            .ok()?
            .lines()
            .find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["device"] == "gps" && v["pulse"] == true)
                    .then(|| v["truth_ns"].as_i64())
                    .flatten()
            })
    }
}

/// A loopback port free for TCP (gRPC) and UDP (time transfer on the same number).
pub fn free_port() -> u16 {
    ttsys::port::free_port().expect("a free loopback port")
}

/// Starts a master with config text `cfg` (written to DIR/NAME.toml).
pub fn start_master(dir: &Path, name: &str, cfg: &str) -> Proc {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, cfg).unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    Proc(
        Command::new(timemaster_bin())
            .args(["run", "-c"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub async fn client(
    port: u16,
) -> v1::time_master_client::TimeMasterClient<tonic::transport::Channel> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ep =
            tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
        if let Ok(ch) = ep.connect().await {
            return v1::time_master_client::TimeMasterClient::new(ch);
        }
        assert!(Instant::now() < deadline, "master on {port} never came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn realtime_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

pub fn status_of(code: i32) -> ttcore::ClockStatus {
    ttproto::status_from_wire(code)
}

/// One time exchange with the master on UDP `port` (a plain socket, user-space reads of
/// CLOCK_REALTIME around it): `(t1, t4, reply)`.
pub fn udp_exchange(
    port: u16,
) -> (
    i64,
    i64,
    ttcore::ntp::packet::TtReply,
    ttcore::ntp::packet::Header,
) {
    use ttcore::ntp::packet::{Header, Packet, TtField, TtRequest};
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let mut req = Vec::new();
    Packet {
        header: Header::client(0x1234_5678),
        tt: Some(TtField::Request(TtRequest::default())),
    }
    .encode(&mut req);
    let t1 = ttsys::clock::realtime_ns();
    sock.send_to(&req, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 1024];
    let n = sock.recv(&mut buf).expect("a reply over UDP");
    let t4 = ttsys::clock::realtime_ns();
    let p = Packet::decode(&buf[..n]).expect("a well-formed reply");
    assert_eq!(
        p.header.origin_ts.0, 0x1234_5678,
        "the reply echoes our cookie"
    );
    match p.tt {
        Some(TtField::Reply(r)) => (t1, t4, r, p.header),
        other => panic!("no TrueTime reply field: {other:?}"),
    }
}
