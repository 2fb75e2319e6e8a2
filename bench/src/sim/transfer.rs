//! The simulated time transfer: one NTP exchange between a client and a master through the
//! same client and server code as the daemons, and the masters' once-a-second round among
//! themselves.

use super::*;

/// One simulated exchange: the host's request crosses the network (`up` ns), the master answers
/// with the real [`ttcore::ntp::answer`] (its transmit read `residence` after arrival, the
/// kernel's transmit stamp `send_path` later), the reply crosses back (`down`), and the
/// client's real [`Client::on_reply`] checks and bounds it. `client_raw` reads the client's
/// raw clock at a true instant.
///
/// The master's published view is taken once per state of its core (until its devices feed it
/// the next event or the masters' round changes it, [`Master::view`]) and reused by every
/// exchange in between: the one part of the view that depends on the instant — the status
/// after the max-ε check — is applied again by [`ttcore::ntp::answer`] at each exchange's own
/// stamps, and ε only grows with time.
#[allow(clippy::too_many_arguments)]
pub(super) fn exchange(
    m: &mut Master,
    client: &mut Client,
    cookie: u64,
    t_send: i64,
    (up, down, send_path): (i64, i64, i64),
    max_eps: Span,
    drift: Rate,
    client_raw: &mut dyn FnMut(i64) -> i64,
) -> Option<ReplyOutcome> {
    let mut req = Vec::with_capacity(80);
    let mut rep = Vec::with_capacity(144);
    client.request(cookie, &mut req);
    let t2_true = t_send + up;
    let t3_true = t2_true + 8_000;
    let tx_kernel = t3_true + send_path;
    let t4_true = tx_kernel + down;
    let r2 = m.vm.raw_at(t2_true);
    let r3 = m.vm.raw_at(t3_true);
    let rk = m.vm.raw_at(tx_kernel);
    let state = m.vm.events;
    let view = match &m.view {
        Some((e, v)) if *e == state => v.clone(),
        _ => {
            let mut view = timemaster::ntp_server::view_of(
                &m.vm.core.snapshot(ttcore::RawReading::from_nanos(r2)),
                m.kind,
                "sim",
                max_eps,
            );
            // A liar is wrong and does not know it: its whole timescale is shifted.
            if let Some(model) = view.model.as_mut() {
                model.ref_time = model.ref_time.saturating_add(Span::from_nanos(m.lie_ns));
            }
            m.view = Some((state, view.clone()));
            view
        }
    };
    let sent = &m.sent;
    let a = ttcore::ntp::answer(
        &req,
        req.len(),
        RawStamp {
            raw: r2,
            kernel: true,
        },
        r3,
        &|t2, c| sent.get(&(t2, c)).copied(),
        &view,
        &mut rep,
    )
    .ok()?;
    if m.sent.len() > SENT_CAP {
        m.sent.clear();
    }
    m.sent.insert(
        (a.t2_ns, cookie),
        ttcore::ntp::sent_reply(&view, a.t2_ns, rk, true),
    );
    let t1 = client_raw(t_send);
    let t4 = client_raw(t4_true);
    client.on_reply(&rep, cookie, t1, t4, true, drift).ok()
}

/// Once a second: masters exchange time with each other over the simulated network (200 µs
/// each way), through the same NTP exchange as the hosts, for the real cross-check and the
/// armageddon start.
pub(super) fn master_round(masters: &mut [Master], t: i64) {
    let n = masters.len();
    for m in masters.iter_mut() {
        m.vm.advance_to(t);
    }
    let drift = Rate::from_ppm(500);
    for i in 0..n {
        let raw_i = masters[i].vm.raw_at(t);
        let mut got: Vec<Option<ttcore::ntp::Sample>> = Vec::with_capacity(n - 1);
        for j in 0..n {
            if j == i {
                continue;
            }
            let down = masters[j].down.iter().any(|&(a, b)| t >= a && t < b);
            if down {
                masters[i].peers[j].reset();
                got.push(None);
                continue;
            }
            // Split the borrow: the client lives in master i, the server is master j.
            let (mi, mj) = if i < j {
                let (a, b) = masters.split_at_mut(j);
                (&mut a[i], &mut b[0])
            } else {
                let (a, b) = masters.split_at_mut(i);
                (&mut b[0], &mut a[j])
            };
            let mut client = std::mem::take(&mut mi.peers[j]);
            let cookie = (t as u64) ^ ((i as u64) << 56) ^ ((j as u64) << 48);
            let vm = &mut mi.vm;
            let out = exchange(
                mj,
                &mut client,
                cookie,
                t,
                (200_000, 200_000, 5_000),
                Span::from_millis(1),
                drift,
                &mut |tt| vm.raw_at(tt),
            );
            mi.peers[j] = client;
            got.push(out.map(|o| o.best()).filter(|s| s.trustworthy));
        }
        // Every interval carried to the latest reading.
        let at = got
            .iter()
            .flatten()
            .map(|s| s.m.at.as_nanos())
            .max()
            .unwrap_or(raw_i);
        let peers: Vec<Option<OffsetInterval>> = got
            .iter()
            .map(|s| {
                s.and_then(|s| ttcore::ntp::narrowest(&[s], at, drift))
                    .map(|s| s.m.bounds)
            })
            .collect();
        // The round changes the core: its published view is taken again.
        masters[i].view = None;
        let core = &mut masters[i].vm.core;
        let _ = core.on_peer_round(ttcore::RawReading::from_nanos(at), &peers);
        core.cross_check(ttcore::RawReading::from_nanos(at), &peers);
        // The cross-check's verdict is the master's own: kept, and checked against the
        // scenario's expectation in the report.
        if core.evicted() && masters[i].evicted_at.is_none() {
            masters[i].evicted_at = Some(t);
        }
    }
}
