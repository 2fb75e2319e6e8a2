//! openraft plumbing: the type configuration, durable log storage in redb, and the state
//! machine around [`Mvcc`]. The transport between nodes is in [`crate::network`].
//!
//! **Durability.** Every append, vote and committed index is written in a redb write
//! transaction committed with `Durability::Immediate` (fsync) *before* openraft is told it is
//! done, so a node never acknowledges a vote or an append it could forget. The state machine is
//! in memory and rebuilt at start from the last snapshot (also in redb) plus the committed log.

use crate::mvcc::{Applied, Command, Mvcc, Ts};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

openraft::declare_raft_types!(
    /// The store's Raft types: [`Command`] in, [`Applied`] out, nodes named by address.
    pub TypeConfig:
        D = Command,
        R = Applied,
        Node = BasicNode,
);

/// The Raft handle type.
pub type Raft = openraft::Raft<TypeConfig>;
/// Node id.
pub type NodeId = u64;

type StorageResult<T> = Result<T, StorageError<NodeId>>;

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Opens (or creates) the node's redb database at `path`.
pub fn open_db(path: &Path) -> Result<Arc<Database>, std::io::Error> {
    let db = Database::create(path).map_err(|e| io_err(format!("{}: {e}", path.display())))?;
    let tx = db.begin_write().map_err(io_err)?;
    tx.open_table(LOGS).map_err(io_err)?;
    tx.open_table(META).map_err(io_err)?;
    tx.commit().map_err(io_err)?;
    Ok(Arc::new(db))
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn get_meta<T: for<'a> Deserialize<'a>>(
    db: &Database,
    key: &str,
) -> Result<Option<T>, std::io::Error> {
    let tx = db.begin_read().map_err(io_err)?;
    let t = tx.open_table(META).map_err(io_err)?;
    match t.get(key).map_err(io_err)? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(v.value()).map(Some).map_err(io_err),
    }
}

fn put_meta<T: Serialize>(db: &Database, key: &str, v: &T) -> Result<(), std::io::Error> {
    let bytes = serde_json::to_vec(v).map_err(io_err)?;
    let tx = db.begin_write().map_err(io_err)?;
    {
        let mut t = tx.open_table(META).map_err(io_err)?;
        t.insert(key, bytes.as_slice()).map_err(io_err)?;
    }
    tx.commit().map_err(io_err)
}

/// Runs blocking redb work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, std::io::Error> + Send + 'static,
) -> Result<T, std::io::Error> {
    tokio::task::spawn_blocking(f).await.map_err(io_err)?
}

/// The Raft log in redb.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    /// The log in `db`.
    pub fn new(db: Arc<Database>) -> Self {
        LogStore { db }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let db = self.db.clone();
        let bounds: (Bound<u64>, Bound<u64>) =
            (range.start_bound().cloned(), range.end_bound().cloned());
        blocking(move || {
            let tx = db.begin_read().map_err(io_err)?;
            let t = tx.open_table(LOGS).map_err(io_err)?;
            let mut out = Vec::new();
            for row in t.range::<u64>(bounds).map_err(io_err)? {
                let (_, v) = row.map_err(io_err)?;
                out.push(serde_json::from_slice(v.value()).map_err(io_err)?);
            }
            Ok(out)
        })
        .await
        .map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let db = self.db.clone();
        blocking(move || {
            let purged: Option<LogId<NodeId>> = get_meta(&db, "purged")?;
            let tx = db.begin_read().map_err(io_err)?;
            let t = tx.open_table(LOGS).map_err(io_err)?;
            let last = match t.last().map_err(io_err)? {
                Some((_, v)) => {
                    let e: Entry<TypeConfig> = serde_json::from_slice(v.value()).map_err(io_err)?;
                    Some(e.log_id)
                }
                None => purged,
            };
            Ok(LogState {
                last_purged_log_id: purged,
                last_log_id: last,
            })
        })
        .await
        .map_err(|e| StorageIOError::read_logs(&e).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        let (db, vote) = (self.db.clone(), *vote);
        blocking(move || put_meta(&db, "vote", &vote))
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        let db = self.db.clone();
        blocking(move || get_meta(&db, "vote"))
            .await
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        let db = self.db.clone();
        blocking(move || put_meta(&db, "committed", &committed))
            .await
            .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        let db = self.db.clone();
        blocking(move || Ok(get_meta::<Option<LogId<NodeId>>>(&db, "committed")?.flatten()))
            .await
            .map_err(|e| StorageIOError::read(&e).into())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let rows: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, serde_json::to_vec(&e)?)))
            .collect::<Result<_, serde_json::Error>>()
            .map_err(|e| StorageIOError::write_logs(&e))?;
        let db = self.db.clone();
        let res = blocking(move || {
            let tx = db.begin_write().map_err(io_err)?;
            {
                let mut t = tx.open_table(LOGS).map_err(io_err)?;
                for (i, bytes) in &rows {
                    t.insert(*i, bytes.as_slice()).map_err(io_err)?;
                }
            }
            // Durability::Immediate (redb's default): fsync before returning.
            tx.commit().map_err(io_err)
        })
        .await;
        match res {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = StorageIOError::write_logs(&e).into();
                callback.log_io_completed(Err(e));
                Err(err)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_write().map_err(io_err)?;
            {
                let mut t = tx.open_table(LOGS).map_err(io_err)?;
                t.retain_in(log_id.index.., |_, _| false).map_err(io_err)?;
            }
            tx.commit().map_err(io_err)
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let db = self.db.clone();
        blocking(move || {
            put_meta(&db, "purged", &Some(log_id))?;
            let tx = db.begin_write().map_err(io_err)?;
            {
                let mut t = tx.open_table(LOGS).map_err(io_err)?;
                t.retain_in(..=log_id.index, |_, _| false).map_err(io_err)?;
            }
            tx.commit().map_err(io_err)
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

/// What the state machine holds (and what a snapshot carries).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SmData {
    /// The versions.
    pub mvcc: Mvcc,
    /// Last applied log id.
    pub last_applied: Option<LogId<NodeId>>,
    /// Last applied membership.
    pub membership: StoredMembership<NodeId, BasicNode>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

/// State shared between the state machine (writer) and the node's read path.
pub struct Shared {
    /// The applied state.
    pub data: RwLock<SmData>,
    /// Safe time after each applied batch (readers wait on it).
    pub safe: watch::Sender<Ts>,
    /// Called with each committed transaction's timestamp (the HLC merges it).
    pub observe: Box<dyn Fn(Ts) + Send + Sync>,
}

impl Shared {
    /// Fresh state with an observer for commit timestamps.
    pub fn new(observe: Box<dyn Fn(Ts) + Send + Sync>) -> Arc<Shared> {
        Arc::new(Shared {
            data: RwLock::new(SmData::default()),
            safe: watch::Sender::new(Ts::default()),
            observe,
        })
    }

    /// Read access to the applied state.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, SmData> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, SmData> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The state machine: [`Mvcc`] plus snapshots kept in redb.
#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
    db: Arc<Database>,
}

impl StateMachine {
    /// The state machine over `shared`, restored from the snapshot in `db` if there is one.
    pub fn open(shared: Arc<Shared>, db: Arc<Database>) -> Result<Self, std::io::Error> {
        if let Some(s) = get_meta::<StoredSnapshot>(&db, "snapshot")? {
            let data: SmData = serde_json::from_slice(&s.data).map_err(io_err)?;
            let safe = data.mvcc.safe();
            *shared.write() = data;
            shared.safe.send_replace(safe);
        }
        Ok(StateMachine { shared, db })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let (bytes, meta) = {
            let d = self.shared.read();
            let bytes =
                serde_json::to_vec(&*d).map_err(|e| StorageIOError::read_state_machine(&e))?;
            let meta = SnapshotMeta {
                last_log_id: d.last_applied,
                last_membership: d.membership.clone(),
                snapshot_id: format!(
                    "{}-{}",
                    d.last_applied.map(|l| l.index).unwrap_or(0),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos())
                        .unwrap_or(0)
                ),
            };
            (bytes, meta)
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: bytes.clone(),
        };
        let db = self.db.clone();
        blocking(move || put_meta(&db, "snapshot", &stored))
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>)> {
        let d = self.shared.read();
        Ok((d.last_applied, d.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Applied>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        let mut committed = Vec::new();
        let safe = {
            let mut d = self.shared.write();
            for e in entries {
                d.last_applied = Some(e.log_id);
                out.push(match e.payload {
                    EntryPayload::Blank => Applied::Nothing,
                    EntryPayload::Normal(cmd) => {
                        let a = d.mvcc.apply(&cmd);
                        if let Applied::Committed { ts, .. } = a {
                            committed.push(ts);
                        }
                        a
                    }
                    EntryPayload::Membership(m) => {
                        d.membership = StoredMembership::new(Some(e.log_id), m);
                        Applied::Nothing
                    }
                });
            }
            d.mvcc.safe()
        };
        for ts in committed {
            (self.shared.observe)(ts);
        }
        self.shared.safe.send_replace(safe);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let bytes = snapshot.into_inner();
        let data: SmData = serde_json::from_slice(&bytes)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: bytes,
        };
        let db = self.db.clone();
        blocking(move || put_meta(&db, "snapshot", &stored))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let safe = data.mvcc.safe();
        *self.shared.write() = data;
        self.shared.safe.send_replace(safe);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let db = self.db.clone();
        let s = blocking(move || get_meta::<StoredSnapshot>(&db, "snapshot"))
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(s.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
