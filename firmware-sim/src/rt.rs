//! The real-time shell: runs the device models against the wall clock on pseudo-terminals,
//! Unix datagram sockets and a lock-line file. All device behaviour lives in the models; this
//! module only schedules and moves bytes.

use crate::atomic::AtomicClock;
use crate::gps::{GpsReceiver, serial_time_ns};
use crate::scenario::{ActiveFaults, Scenario};
use crate::truth::Truth;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::openpty;
use nix::sys::termios::{BaudRate, SetArg, cfmakeraw, cfsetspeed, tcgetattr, tcsetattr};
use nix::time::{ClockId, ClockNanosleepFlags, clock_gettime, clock_nanosleep};
use serde_json::json;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ttcore::NANOS_PER_SEC;
use ttcore::UtcLabel;
use ttcore::sock::SockSample;

/// `CLOCK_REALTIME` in ns.
pub fn realtime_ns() -> i64 {
    clock_gettime(ClockId::CLOCK_REALTIME)
        .map(|t| t.tv_sec() * NANOS_PER_SEC + t.tv_nsec())
        .unwrap_or(0)
}

/// Sleeps until `CLOCK_REALTIME` reaches `deadline_ns`, waking at least every 100 ms to check
/// `stop`. Returns false if stopped.
pub fn sleep_until(deadline_ns: i64, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = realtime_ns();
        if now >= deadline_ns {
            return true;
        }
        let target = deadline_ns.min(now + 100_000_000);
        let ts = nix::sys::time::TimeSpec::new(target / NANOS_PER_SEC, target % NANOS_PER_SEC);
        let _ = clock_nanosleep(
            ClockId::CLOCK_REALTIME,
            ClockNanosleepFlags::TIMER_ABSTIME,
            &ts,
        );
    }
}

/// A pseudo-terminal in raw mode, with a stable symlink to its slave side.
///
/// The simulator keeps the slave open so writes never fail for lack of a reader; bytes nobody
/// reads are dropped when the buffer is full, as on a real UART.
pub struct Pty {
    master: OwnedFd,
    _slave: OwnedFd,
    /// The slave device path (`/dev/pts/N`).
    pub path: PathBuf,
}

fn baud_rate(baud: u32) -> BaudRate {
    match baud {
        0..=4800 => BaudRate::B4800,
        4801..=9600 => BaudRate::B9600,
        9601..=19200 => BaudRate::B19200,
        19201..=38400 => BaudRate::B38400,
        38401..=57600 => BaudRate::B57600,
        _ => BaudRate::B115200,
    }
}

impl Pty {
    /// Opens a raw-mode pty at `baud` and points `link` at its slave.
    pub fn open(link: &Path, baud: u32) -> std::io::Result<Pty> {
        let p = openpty(None, None)?;
        let mut t = tcgetattr(&p.slave)?;
        cfmakeraw(&mut t);
        cfsetspeed(&mut t, baud_rate(baud))?;
        tcsetattr(&p.slave, SetArg::TCSANOW, &t)?;
        let flags = OFlag::from_bits_truncate(fcntl(&p.master, FcntlArg::F_GETFL)?);
        fcntl(&p.master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        let path = nix::unistd::ttyname(&p.slave)?;
        let tmp = link.with_extension("tmp-link");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&path, &tmp)?;
        std::fs::rename(&tmp, link)?;
        Ok(Pty {
            master: p.master,
            _slave: p.slave,
            path,
        })
    }

    /// Writes what fits; returns the bytes written (the rest is dropped).
    pub fn write_lossy(&self, b: &[u8]) -> usize {
        nix::unistd::write(&self.master, b).unwrap_or(0)
    }

    /// Reads available input (what a client wrote to the slave), waiting up to `timeout_ms`.
    pub fn read_timeout(&self, buf: &mut [u8], timeout_ms: u16) -> usize {
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(timeout_ms)) {
            Ok(n) if n > 0 => nix::unistd::read(&self.master, buf).unwrap_or(0),
            _ => 0,
        }
    }
}

/// Where the simulator puts things.
#[derive(Clone, Debug)]
pub struct Paths {
    /// Symlink to the GPS pty.
    pub gps_link: PathBuf,
    /// Symlink to the atomic clock's telemetry pty.
    pub atomic_link: PathBuf,
    /// SOCK socket for GPS PPS samples (`pulse = 1`); the receiver binds it.
    pub pps_sock: PathBuf,
    /// SOCK socket for NMEA time samples (`pulse = 0`).
    pub nmea_sock: PathBuf,
    /// SOCK socket for the atomic clock's 1PPS.
    pub atomic_pps_sock: PathBuf,
    /// The lock/alarm line as a file: `1` locked, `0` not.
    pub lock_gpio: PathBuf,
    /// Truth JSON lines (appended).
    pub truth_file: PathBuf,
    /// Truth JSON lines streamed to every client of this Unix socket.
    pub truth_sock: PathBuf,
}

impl Paths {
    /// The default layout inside `dir`.
    pub fn in_dir(dir: &Path) -> Paths {
        Paths {
            gps_link: dir.join("gps"),
            atomic_link: dir.join("atomic"),
            pps_sock: dir.join("pps.sock"),
            nmea_sock: dir.join("nmea.sock"),
            atomic_pps_sock: dir.join("atomic-pps.sock"),
            lock_gpio: dir.join("lock.gpio"),
            truth_file: dir.join("truth.jsonl"),
            truth_sock: dir.join("truth.sock"),
        }
    }
}

/// Fans truth records out to a file and to socket clients.
struct TruthSink {
    file: Mutex<std::fs::File>,
    clients: Arc<Mutex<Vec<UnixStream>>>,
}

impl TruthSink {
    fn new(paths: &Paths, stop: Arc<AtomicBool>) -> std::io::Result<TruthSink> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&paths.truth_file)?;
        let _ = std::fs::remove_file(&paths.truth_sock);
        let listener = UnixListener::bind(&paths.truth_sock)?;
        listener.set_nonblocking(true)?;
        let clients: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let c2 = clients.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => c2.lock().unwrap_or_else(|e| e.into_inner()).push(s),
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        Ok(TruthSink {
            file: Mutex::new(file),
            clients,
        })
    }

    fn emit(&self, v: serde_json::Value) {
        let mut line = v.to_string();
        line.push('\n');
        if let Err(e) = self
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(line.as_bytes())
        {
            tracing::warn!("truth file: {e}");
        }
        let mut cl = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        cl.retain_mut(|c| c.write_all(line.as_bytes()).is_ok());
    }
}

fn send_sample(sock: &UnixDatagram, path: &Path, s: &SockSample) {
    // The receiver (chronyd, gpsd, timemaster) owns the socket; if it is absent the sample is
    // lost, as a pulse is when nothing listens.
    if let Err(e) = sock.send_to(&s.encode(), path) {
        tracing::trace!("{}: {e}", path.display());
    }
}

/// Options of a real-time run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// File locations.
    pub paths: Paths,
    /// Stop after this many seconds (None: run until stopped).
    pub duration_s: Option<f64>,
}

/// Runs the scenario in real time until `stop` is set or the duration passes.
/// Calls `ready` once every device exists.
// Creates every device (ptys, sockets, files) and starts their threads: the start-up sequence of
// the simulator.
pub fn run(
    scenario: &Scenario,
    opts: &RunOptions,
    stop: Arc<AtomicBool>,
    ready: impl FnOnce(serde_json::Value),
) -> std::io::Result<()> {
    let now = realtime_ns();
    let leap = scenario.leap_table().map_err(std::io::Error::other)?;
    let truth = match scenario
        .truth
        .start
        .as_deref()
        .and_then(UtcLabel::parse_iso)
    {
        Some(l) => Truth::virtual_start(leap, &l, now).map_err(std::io::Error::other)?,
        None => Truth::realtime(leap),
    };
    let start_tai_ns = truth.tai_at_realtime(now);
    let sink = Arc::new(TruthSink::new(&opts.paths, stop.clone())?);
    if let Some(d) = opts.duration_s {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(d));
            stop.store(true, Ordering::Relaxed);
        });
    }
    let mut handles = Vec::new();
    let p = &opts.paths;
    let gps_pty = if scenario.gps.enabled {
        Some(Pty::open(&p.gps_link, scenario.gps.baud)?)
    } else {
        None
    };
    let atomic_pty = if scenario.atomic.enabled {
        Some(Pty::open(&p.atomic_link, 57_600)?)
    } else {
        None
    };
    let info = json!({
        "event": "ready",
        "gps_pty": gps_pty.as_ref().map(|p| p.path.display().to_string()),
        "gps_link": p.gps_link, "atomic_pty": atomic_pty.as_ref().map(|p| p.path.display().to_string()),
        "atomic_link": p.atomic_link, "pps_sock": p.pps_sock, "nmea_sock": p.nmea_sock,
        "atomic_pps_sock": p.atomic_pps_sock, "lock_gpio": p.lock_gpio,
        "truth_file": p.truth_file, "truth_sock": p.truth_sock,
    });
    if let Some(pty) = gps_pty {
        let (sc, tr, st, sk, paths) = (
            scenario.clone(),
            truth.clone(),
            stop.clone(),
            sink.clone(),
            p.clone(),
        );
        handles.push(std::thread::spawn(move || {
            gps_loop(&sc, &tr, start_tai_ns, pty, &paths, &st, &sk)
        }));
    }
    if let Some(pty) = atomic_pty {
        let clock = Arc::new(Mutex::new(AtomicClock::new(scenario, start_tai_ns)));
        let (sc, tr, st, sk, paths) = (
            scenario.clone(),
            truth.clone(),
            stop.clone(),
            sink.clone(),
            p.clone(),
        );
        let c2 = clock.clone();
        handles.push(std::thread::spawn(move || {
            atomic_pulse_loop(&sc, &tr, start_tai_ns, &c2, &paths, &st, &sk)
        }));
        let (sc, tr, st, paths) = (scenario.clone(), truth.clone(), stop.clone(), p.clone());
        handles.push(std::thread::spawn(move || {
            telemetry_loop(&sc, &tr, start_tai_ns, &clock, pty, &paths, &st)
        }));
    }
    ready(info);
    for h in handles {
        let _ = h.join();
    }
    for f in [&p.gps_link, &p.atomic_link, &p.truth_sock] {
        let _ = std::fs::remove_file(f);
    }
    Ok(())
}

fn rel_s(tai_ns: i64, start_tai_ns: i64) -> f64 {
    (tai_ns - start_tai_ns) as f64 / 1e9
}

// The receiver's real-time loop: wait for the second, write the NMEA burst, send the pulse, each
// under the scenario's faults; one timed sequence.
fn gps_loop(
    sc: &Scenario,
    truth: &Truth,
    start_tai_ns: i64,
    pty: Pty,
    paths: &Paths,
    stop: &AtomicBool,
    sink: &TruthSink,
) {
    let sock = match UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot create a datagram socket: {e}");
            return;
        }
    };
    let mut gps = GpsReceiver::new(sc.gps.clone(), sc.seed, start_tai_ns / NANOS_PER_SEC);
    let mut pty = Some(pty);
    let mut s = start_tai_ns.div_euclid(NANOS_PER_SEC) + 1;
    while !stop.load(Ordering::Relaxed) {
        let f = sc.active(rel_s(s * NANOS_PER_SEC, start_tai_ns));
        let sec = gps.second(s, truth, &f);
        if f.gps_hangup && pty.is_some() {
            tracing::info!("gps serial line hung up");
            pty = None;
        } else if !f.gps_hangup && pty.is_none() {
            match Pty::open(&paths.gps_link, sc.gps.baud) {
                Ok(p) => {
                    tracing::info!("gps serial line back on {}", p.path.display());
                    pty = Some(p);
                }
                Err(e) => tracing::error!("reopening gps pty: {e}"),
            }
        }
        let truth_ns = truth.timescale_at_tai(s * NANOS_PER_SEC).as_nanos();
        if let Some(p) = &sec.pulse {
            let rt_edge = truth.realtime_at_tai(p.edge_tai_ns);
            if !sleep_until(rt_edge, stop) {
                break;
            }
            let off = truth_ns - rt_edge;
            send_sample(
                &sock,
                &paths.pps_sock,
                &SockSample::from_nanos(rt_edge, off, true, leap_code(&f)),
            );
        }
        if let Some(b) = &sec.burst {
            let rt0 = truth.realtime_at_tai(b.start_tai_ns);
            if !sleep_until(rt0, stop) {
                break;
            }
            if sc.gps.nmea_sock_samples
                && b.fix
                && let Some(l) = &b.label
                && let Ok(label_ts) = truth.leap_table().utc_to_timescale(l)
            {
                // The NMEA time, tagged at the nominal edge of the second it labels.
                let tv = truth.realtime_at_tai(s * NANOS_PER_SEC + sc.gps.cable_delay_ns);
                let off = label_ts.as_nanos() - tv;
                send_sample(
                    &sock,
                    &paths.nmea_sock,
                    &SockSample::from_nanos(tv, off, false, leap_code(&f)),
                );
            }
            let mut t = rt0;
            for c in &b.chunks {
                if let Some(p) = &pty {
                    p.write_lossy(c);
                }
                t += serial_time_ns(c.len(), sc.gps.baud);
                if !sleep_until(t, stop) {
                    break;
                }
            }
        }
        let label_error_s = sec.burst.as_ref().and_then(|b| b.label).and_then(|l| {
            truth
                .leap_table()
                .utc_to_tai_ns(&l)
                .ok()
                .map(|t| (t - s * NANOS_PER_SEC) as f64 / 1e9)
        });
        sink.emit(json!({
            "device": "gps",
            "second_tai": s,
            "truth_ns": truth_ns,
            "label": sec.true_label.to_string(),
            "written_label": sec.burst.as_ref().and_then(|b| b.label).map(|l| l.to_string()),
            "label_error_s": label_error_s,
            "pulse": sec.pulse.is_some(),
            "pps_edge_error_ns": sec.pulse.map(|p| p.edge_error_ns),
            "qerr_ns": sec.pulse.map(|p| p.qerr_ns),
            "fix": sec.burst.as_ref().is_some_and(|b| b.fix),
            "faults": f.kinds.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        }));
        s += 1;
    }
}

fn leap_code(f: &ActiveFaults) -> i32 {
    match f.leap_announced {
        Some((_, 1)) => 1,
        Some((_, -1)) => 2,
        _ => 0,
    }
}

fn atomic_pulse_loop(
    sc: &Scenario,
    truth: &Truth,
    start_tai_ns: i64,
    clock: &Mutex<AtomicClock>,
    paths: &Paths,
    stop: &AtomicBool,
    sink: &TruthSink,
) {
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let mut k = start_tai_ns.div_euclid(NANOS_PER_SEC) + 1;
    while !stop.load(Ordering::Relaxed) {
        let edge = clock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pulse_edge(k);
        let rt_edge = truth.realtime_at_tai(edge);
        if !sleep_until(rt_edge, stop) {
            break;
        }
        let f = sc.active(rel_s(edge, start_tai_ns));
        let (state, freq) = {
            let mut c = clock.lock().unwrap_or_else(|e| e.into_inner());
            (c.state_at(edge, &f), c.freq_error_ppt_at(edge, &f))
        };
        let truth_ns = truth.timescale_at_tai(k * NANOS_PER_SEC).as_nanos();
        send_sample(
            &sock,
            &paths.atomic_pps_sock,
            &SockSample::from_nanos(rt_edge, truth_ns - rt_edge, true, 0),
        );
        sink.emit(json!({
            "device": "atomic",
            "second_tai": k,
            "truth_ns": truth_ns,
            "pps_edge_error_ns": edge - k * NANOS_PER_SEC,
            "freq_error_ppt": freq,
            "locked": state.locked,
            "status": state.status,
            "alarm": state.alarm,
            "faults": f.kinds.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        }));
        k += 1;
    }
}

/// Writes the lock line file atomically: `1` locked, `0` not.
fn write_lock_line(path: &Path, locked: bool) {
    let tmp = path.with_extension("tmp");
    let ok = std::fs::write(&tmp, if locked { "1\n" } else { "0\n" })
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = ok {
        tracing::warn!("lock line {}: {e}", path.display());
    }
}

fn telemetry_loop(
    sc: &Scenario,
    truth: &Truth,
    start_tai_ns: i64,
    clock: &Mutex<AtomicClock>,
    pty: Pty,
    paths: &Paths,
    stop: &AtomicBool,
) {
    let mut pty = Some(pty);
    let mut line: Vec<u8> = Vec::new();
    let mut buf = [0u8; 256];
    let mut last_lock: Option<bool> = None;
    while !stop.load(Ordering::Relaxed) {
        let tai = truth.tai_at_realtime(realtime_ns());
        let f = sc.active(rel_s(tai, start_tai_ns));
        // The lock/alarm line follows the device state within one loop (≤ 100 ms).
        let locked = clock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .state_at(tai, &f)
            .locked;
        if last_lock != Some(locked) {
            write_lock_line(&paths.lock_gpio, locked);
            last_lock = Some(locked);
        }
        if f.atomic_hangup && pty.is_some() {
            tracing::info!("atomic clock serial line hung up");
            pty = None;
            line.clear();
        } else if !f.atomic_hangup && pty.is_none() {
            match Pty::open(&paths.atomic_link, 57_600) {
                Ok(p) => pty = Some(p),
                Err(e) => tracing::error!("reopening atomic pty: {e}"),
            }
        }
        let Some(p) = &pty else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let n = p.read_timeout(&mut buf, 100);
        for &b in &buf[..n] {
            if b == b'\n' || b == b'\r' {
                if !line.is_empty() {
                    let cmd = String::from_utf8_lossy(&line).into_owned();
                    line.clear();
                    let tai = truth.tai_at_realtime(realtime_ns());
                    let mut answer = clock
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .command(&cmd, tai, &f);
                    answer.push_str("\r\n");
                    p.write_lossy(answer.as_bytes());
                }
            } else if line.len() < 128 {
                line.push(b);
            }
        }
    }
}
