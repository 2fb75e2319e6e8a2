//! The discipline filter: a two-state Kalman filter (phase offset, frequency) of the
//! reference timescale against the local raw clock.
//!
//! **Why Kalman and not PI.** A PI loop (ntpd, chrony's PLL mode) has fixed gains tuned for one
//! noise regime and no notion of its own uncertainty. The Kalman filter weighs each pulse by the
//! measured pulse jitter against the local oscillator's wander, converges in a few pulses after a
//! cold start, switches cleanly between references of very different quality (GPS pulses with
//! tens of ns of jitter, atomic 1PPS with ~1 ns) by changing only the measurement variance, and —
//! what matters for an honest bound — it carries the variances of its own phase and frequency
//! estimates, which go into ε. (ntpd-rs uses a Kalman filter for the same reasons.)
//!
//! State: `θ` = timescale − raw (ns) at raw reading `ref_raw`, and `f` = d(timescale)/d(raw) − 1.
//! To keep `f64` precision with raw clocks near 10¹⁸ ns, `θ` is held as an `i64` base plus a
//! small `f64` remainder. Measurements are `z = reference time − raw reading` of a pulse edge.

/// Filter tuning (process noise of the local oscillator, measurement noise floor).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KalmanParams {
    /// White phase noise of the local clock (ns² per s).
    pub q_phase_ns2_per_s: f64,
    /// Random-walk frequency noise of the local clock ((parts per 10⁹)² per s).
    pub q_freq_ppb2_per_s: f64,
    /// Initial frequency uncertainty (ppm, 1σ).
    pub initial_freq_sigma_ppm: f64,
}

impl Default for KalmanParams {
    fn default() -> Self {
        KalmanParams {
            q_phase_ns2_per_s: 1.0,
            q_freq_ppb2_per_s: 1.0,
            initial_freq_sigma_ppm: 100.0,
        }
    }
}

/// The outcome of offering a measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Update {
    /// Accepted; the innovation (measurement − prediction, ns).
    Accepted(f64),
    /// Rejected by the gate; the innovation (ns).
    Rejected(f64),
}

/// The filter.
#[derive(Clone, Debug)]
pub struct Kalman {
    p: KalmanParams,
    base: i64,
    x0: f64,
    x1: f64,
    ref_raw: i64,
    cov: [[f64; 2]; 2],
    updates: u64,
}

impl Kalman {
    /// A filter initialised by a first measurement `z_ns` at raw `raw` with variance `r_ns2`.
    pub fn new(p: KalmanParams, raw: i64, z_ns: i64, r_ns2: f64) -> Self {
        let fs = p.initial_freq_sigma_ppm * 1e-6;
        Kalman {
            p,
            base: z_ns,
            x0: 0.0,
            x1: 0.0,
            ref_raw: raw,
            cov: [[r_ns2, 0.0], [0.0, fs * fs]],
            updates: 1,
        }
    }

    /// Measurements accepted so far (including the first).
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Advances the state to raw `raw` (prediction only).
    fn predict(&mut self, raw: i64) {
        let dt_ns = (raw - self.ref_raw) as f64;
        if dt_ns == 0.0 {
            return;
        }
        let dt_s = dt_ns.abs() / 1e9;
        self.x0 += self.x1 * dt_ns;
        let [[a, b], [c, d]] = self.cov;
        // F = [[1, dt], [0, 1]] (dt in ns, f dimensionless).
        let (na, nb, nc) = (
            a + dt_ns * (b + c) + dt_ns * dt_ns * d,
            b + dt_ns * d,
            c + dt_ns * d,
        );
        let qf = self.p.q_freq_ppb2_per_s * 1e-18 * dt_s;
        let qp = self.p.q_phase_ns2_per_s * dt_s + qf * dt_ns * dt_ns / 3.0;
        let qc = qf * dt_ns / 2.0;
        self.cov = [[na + qp, nb + qc], [nc + qc, d + qf]];
        // Re-base so the remainder stays small.
        let whole = self.x0.trunc();
        self.base += whole as i64;
        self.x0 -= whole;
        self.ref_raw = raw;
    }

    /// The predicted offset at `raw` (ns, `i64` part and fraction) without changing state.
    pub fn offset_at(&self, raw: i64) -> (i64, f64) {
        let v = self.x0 + self.x1 * (raw - self.ref_raw) as f64;
        (self.base + v.trunc() as i64, v.fract())
    }

    /// The innovation a measurement would have, and its standard deviation (ns).
    pub fn innovation(&self, raw: i64, z_ns: i64, r_ns2: f64) -> (f64, f64) {
        let mut k = self.clone();
        k.predict(raw);
        let y = (z_ns - k.base) as f64 - k.x0;
        (y, (k.cov[0][0] + r_ns2).sqrt())
    }

    /// Offers a measurement `z_ns` at raw `raw` with variance `r_ns2`; rejected when the
    /// innovation exceeds `gate_ns` (state then only advances by prediction).
    pub fn update(&mut self, raw: i64, z_ns: i64, r_ns2: f64, gate_ns: f64) -> Update {
        self.predict(raw);
        let y = (z_ns - self.base) as f64 - self.x0;
        if y.abs() > gate_ns {
            return Update::Rejected(y);
        }
        let [[a, b], [c, d]] = self.cov;
        let s = a + r_ns2;
        let (k0, k1) = (a / s, c / s);
        self.x0 += k0 * y;
        self.x1 += k1 * y;
        self.cov = [[(1.0 - k0) * a, (1.0 - k0) * b], [c - k1 * a, d - k1 * b]];
        // Keep the covariance symmetric against rounding.
        let off = 0.5 * (self.cov[0][1] + self.cov[1][0]);
        self.cov[0][1] = off;
        self.cov[1][0] = off;
        self.updates += 1;
        Update::Accepted(y)
    }

    /// Estimated frequency (dimensionless: 1e-6 = 1 ppm).
    pub fn freq(&self) -> f64 {
        self.x1
    }

    /// 1σ of the phase estimate at the reference (ns).
    pub fn phase_sigma_ns(&self) -> f64 {
        self.cov[0][0].max(0.0).sqrt()
    }

    /// 1σ of the frequency estimate (dimensionless).
    pub fn freq_sigma(&self) -> f64 {
        self.cov[1][1].max(0.0).sqrt()
    }

    /// The raw reading the state refers to.
    pub fn ref_raw(&self) -> i64 {
        self.ref_raw
    }
}

impl Kalman {
    /// Adds a known frequency step (dimensionless) without changing the uncertainty — used
    /// for the timescale's rate change at a leap-smear boundary.
    pub fn shift_freq(&mut self, delta: f64) {
        self.x1 += delta;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn converges_on_frequency_and_phase() {
        // Local raw clock runs 37 ppm slow against the reference; pulses with 20 ns jitter.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let jitter: Normal<f64> = Normal::new(0.0, 20.0).unwrap();
        let base_raw = 5_000_000_000_000i64;
        let offset0 = 1_700_000_000_000_000_000i64;
        let f = 37e-6;
        let z_at = |k: i64, rng: &mut rand_chacha::ChaCha8Rng| {
            let raw = base_raw + k * 1_000_000_000 - (k as f64 * 1e9 * f / (1.0 + f)) as i64;
            let truth = offset0 + k * 1_000_000_000;
            (raw, truth - raw + jitter.sample(rng).round() as i64)
        };
        let (r0, z0) = z_at(0, &mut rng);
        let mut kf = Kalman::new(KalmanParams::default(), r0, z0, 400.0);
        for k in 1..120 {
            let (r, z) = z_at(k, &mut rng);
            assert!(matches!(kf.update(r, z, 400.0, 1e6), Update::Accepted(_)));
        }
        assert!((kf.freq() - f).abs() < 2e-9, "freq {}", kf.freq());
        assert!(kf.freq_sigma() < 5e-9);
        // Phase prediction one second ahead is within a few σ of truth.
        let (r, _) = z_at(120, &mut rng);
        let truth = offset0 + 120 * 1_000_000_000 - r;
        let (whole, frac) = kf.offset_at(r);
        let err = (whole - truth) as f64 + frac;
        assert!(err.abs() < 60.0, "err {err}");
        assert!(kf.phase_sigma_ns() < 20.0);
    }

    #[test]
    fn gate_rejects_a_phase_jump_without_moving() {
        let mut kf = Kalman::new(KalmanParams::default(), 0, 1_000, 100.0);
        for k in 1..30 {
            kf.update(k * 1_000_000_000, 1_000, 100.0, 1e6);
        }
        let before = kf.offset_at(30_000_000_000);
        match kf.update(30_000_000_000, 251_000, 100.0, 2_000.0) {
            Update::Rejected(y) => assert!((y - 250_000.0).abs() < 10.0),
            other => panic!("{other:?}"),
        }
        assert_eq!(kf.offset_at(30_000_000_000), before);
    }
}
