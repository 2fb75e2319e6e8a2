//! timed's gRPC service: Now, Status, WatchStatus and the test knob.

use super::*;

/// The gRPC service.
pub struct Service(pub Arc<State>);

#[tonic::async_trait]
impl v1::time_daemon_server::TimeDaemon for Service {
    async fn now(
        &self,
        _r: Request<v1::NowRequest>,
    ) -> Result<Response<v1::NowResponse>, tonic::Status> {
        Ok(Response::new(self.0.now()))
    }

    async fn status(
        &self,
        _r: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::DaemonStatus>, tonic::Status> {
        Ok(Response::new(self.0.status()))
    }

    type WatchStatusStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<v1::DaemonStatus, tonic::Status>> + Send>,
    >;

    async fn watch_status(
        &self,
        _r: Request<v1::WatchRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, tonic::Status> {
        use tokio_stream::StreamExt;
        let rx = self.0.watch.subscribe();
        let s = tokio_stream::wrappers::WatchStream::new(rx).map(Ok);
        Ok(Response::new(Box::pin(s)))
    }

    async fn set_clock_knob(
        &self,
        r: Request<v1::ClockKnobRequest>,
    ) -> Result<Response<v1::ClockKnobResponse>, tonic::Status> {
        if !self.0.config.allow_test_knob {
            return Err(tonic::Status::permission_denied(
                "the test knob is off (allow-test-knob = false)",
            ));
        }
        let r = r.into_inner();
        if !r.skew_ppm.is_finite() || r.skew_ppm.abs() > 1000.0 {
            return Err(tonic::Status::invalid_argument(
                "skew_ppm must be within ±1000",
            ));
        }
        let now = clock::raw_ns();
        let knob = {
            let mut k = self.0.knob.lock().unwrap_or_else(|e| e.into_inner());
            // Continuous at `now`: the new transform starts where the old one is.
            let current = k.apply(RawReading::from_nanos(now));
            *k = Knob {
                anchor_raw_ns: now,
                skew: Rate::estimate_from_ppm_f64(r.skew_ppm).unwrap_or(Rate::ZERO),
                step_ns: current.as_nanos() - now + r.step_ns,
            };
            *k
        };
        tracing::warn!(
            "test knob: host clock now runs {:+} ppm with a total step of {} ns",
            r.skew_ppm,
            knob.step_ns
        );
        if r.step_ns != 0 {
            // A step is a disruption: the page says so in the same write that applies it.
            self.0.disrupt(Disturbance::Stepped(r.step_ns));
        } else {
            self.0.publish(self.0.host_raw());
        }
        Ok(Response::new(v1::ClockKnobResponse {
            skew_ppm: knob.skew.as_ppm_f64(),
            total_step_ns: knob.step_ns,
        }))
    }
}
