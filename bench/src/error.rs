//! The one error type of the bench library: what failed, with its cause kept as the source.

use std::fmt::Display;
use thiserror::Error;

/// Why a benchmark, the lab, the simulator or the campaign could not go on.
#[derive(Debug, Error)]
pub enum Error {
    /// A file, a socket or a child process.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A gRPC call answered with an error.
    #[error("gRPC: {}", .0.message())]
    Grpc(#[from] tonic::Status),
    /// A gRPC connection could not be made.
    #[error("gRPC connection: {0}")]
    Connect(#[from] tonic::transport::Error),
    /// The shared-memory page.
    #[error(transparent)]
    Shm(#[from] ttsys::shm::ShmError),
    /// The SDK refused.
    #[error(transparent)]
    TrueTime(#[from] ttclient::TtError),
    /// A scenario, a configuration or a result file did not parse.
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    /// A configuration could not be written.
    #[error(transparent)]
    TomlOut(#[from] toml::ser::Error),
    /// JSON in or out.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A histogram could not be made.
    #[error("histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
    /// A task panicked or was cancelled.
    #[error("task: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The store's client.
    #[error("store: {0}")]
    Store(#[from] ttstore::client::ClientError),
    /// A configuration or a fleet scenario that is refused (names the file, line and key).
    #[error(transparent)]
    Config(#[from] ttsys::config::ConfigError),
    /// A device scenario.
    #[error(transparent)]
    Scenario(#[from] firmware_sim::scenario::ScenarioError),
    /// The vendored receiver captures (fuzz seeds).
    #[error(transparent)]
    Captures(#[from] firmware_sim::replay::CapturesError),
    /// The leap-second table.
    #[error(transparent)]
    Leap(#[from] ttcore::LeapError),
    /// A condition the run needs does not hold (a daemon never synchronized, a child process
    /// exited, a scenario asks for something impossible); the text says which.
    #[error("{0}")]
    Failed(String),
    /// One of the above, with what was being done.
    #[error("{what}: {source}")]
    Context {
        /// What was being done (a path, a command, a daemon's name).
        what: String,
        /// The cause.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// `source`, saying what was being done.
    pub fn at(what: impl Display, source: impl Into<Error>) -> Error {
        Error::Context {
            what: what.to_string(),
            source: Box::new(source.into()),
        }
    }

    /// A failed condition, described.
    pub fn failed(why: impl Into<String>) -> Error {
        Error::Failed(why.into())
    }
}

/// The bench library's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
