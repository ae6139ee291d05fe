//! Reads of the sharded output arrangements: a small dataflow of its own, on every worker.
//!
//! A read ([`Serving::read`], from any thread of process 0) is queued for worker 0 and
//! wakes its `Requests` source, which fixes the read's frontier `upper` (module docs of
//! [`super`]: the newest frontier worker 0's traces have passed, or the one asked for) and
//! sends the request to every worker (`broadcast`). Each worker's `Peek` operator waits
//! until its own traces have passed `upper`, reads its shard through the traces' cursors
//! and sends its rows to worker 0 (`exchange`), whose `Answers` operator merges the parts
//! of every worker and hands the [`Answer`] back. Rows travel once, for one read; nothing
//! is kept between reads. Reads of the same tables at the same frontier that were queued
//! together (while worker 0 was busy) share one read of the shards; each client copies the
//! shared answer on its own thread.
//!
//! The same source asks for the periodic dumps (`--snapshot-every`), one at a time, and,
//! once a bounded input has ended, for the final one; it then keeps the workers (and their
//! traces) alive for `--admin-linger-s` so that late reads are still answered, and ends.
//!
//! `AS OF`: a frontier above the newest one is refused (`not complete yet`), as is one
//! older than the traces still hold (see [`dataflows::serve`]: the last `as_of` window).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::vec::Broadcast;
use timely::scheduling::{Activator, SyncActivator};
use timely::worker::Worker;

use dataflows::output::Output;
use dataflows::serve::{OutputTraces, Windows, arrange_outputs, final_upper};
use dataflows::{Diff, OutputRow, Time};

use super::{Answer, AsOf, Reader};

/// How long a read waits for the workers before it gives up.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a finished read goes.
enum Reply {
    /// Back to the threads that asked (reads of the same tables at the same frontier,
    /// queued while worker 0 was busy, share one read of the shards).
    Clients(Vec<ClientReply>),
    /// To the dump writer; `true` for the final dump.
    Dump(bool),
}

struct Request {
    outputs: Vec<Output>,
    as_of: AsOf,
    reply: ClientReply,
}

/// Where one client's read goes: the answer is shared, each client copies it on its own
/// thread, not on a worker's.
type ClientReply = Sender<Result<Arc<Answer>, String>>;

/// A read as every worker sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Peek {
    id: u64,
    outputs: Vec<Output>,
    upper: Time,
}

/// One worker's rows of a read, per output asked for (`None`: its traces no longer hold the
/// read's frontier).
type Part = (u64, Option<Vec<Vec<OutputRow>>>);

/// A finished dump for the writer: the answer, and whether it is the final one.
pub type DumpJob = (Answer, bool);

/// The process's side of serving: reads from any thread, and what the admin endpoint shows.
pub struct Serving {
    queue: Mutex<Sender<Request>>,
    requests: Mutex<Option<Receiver<Request>>>,
    wake: Mutex<Option<SyncActivator>>,
    /// Process 0 (the one whose worker 0 answers).
    answers_here: bool,
    /// The newest frontier worker 0 has seen (for `/metrics`).
    pub upper: AtomicU64,
    /// Rows this process's shards received per output (net updates), for `/metrics`.
    pub rows: Vec<AtomicI64>,
    /// Worker 0's frontier, for pages that follow it (the dashboard's events).
    pub changes: tokio::sync::watch::Sender<Time>,
}

impl Serving {
    /// Serving for process `process`.
    pub fn new(process: usize) -> Arc<Serving> {
        let (queue, requests) = channel();
        Arc::new(Serving {
            queue: Mutex::new(queue),
            requests: Mutex::new(Some(requests)),
            wake: Mutex::new(None),
            answers_here: process == 0,
            upper: AtomicU64::new(0),
            rows: Output::ALL.iter().map(|_| AtomicI64::new(0)).collect(),
            changes: tokio::sync::watch::Sender::new(0),
        })
    }
}

impl Serving {
    /// Wakes worker 0's `Requests` source (once the job's dataflow is built).
    pub fn wake(&self) {
        if let Ok(wake) = self.wake.lock()
            && let Some(wake) = wake.as_ref()
        {
            let _ = wake.activate();
        }
    }
}

impl Reader for Serving {
    fn read(&self, outputs: &[Output], as_of: AsOf) -> Result<Answer, String> {
        if !self.answers_here {
            return Err("reads are served by process 0 of the cluster".into());
        }
        let (reply, answer) = channel();
        let request = Request { outputs: outputs.to_vec(), as_of, reply };
        self.queue.lock().map_err(|_| "serving stopped")?.send(request).map_err(|_| "the job has ended")?;
        self.wake();
        match answer.recv_timeout(READ_TIMEOUT) {
            Ok(answer) => answer.map(Arc::unwrap_or_clone),
            Err(_) => Err("the workers did not answer in time (or the job has ended)".into()),
        }
    }
}

/// What the `Requests` source does besides reads.
#[derive(Clone)]
pub struct Schedule {
    /// The dump writer's queue (worker 0 only; `None`: no dumps).
    pub dumps: Option<Sender<DumpJob>>,
    /// The interval between periodic dumps (`None`: only the final one).
    pub every: Option<Duration>,
    /// How long reads are still answered after that.
    pub linger: Duration,
    /// A dump (or a table of the final one) is being read or written: set here, cleared by
    /// the writer, which then wakes the source ([`Serving::wake`]).
    pub dump_busy: Arc<AtomicBool>,
}

/// A worker's serving state: its traces, kept compacted by [`WorkerServing::step`].
pub struct WorkerServing {
    traces: Rc<RefCell<OutputTraces>>,
    last_upper: Rc<Cell<Option<Time>>>,
    wake: Vec<Activator>,
    seen: Option<(Option<Time>, Option<Time>)>,
    serving: Arc<Serving>,
    index: usize,
}

/// Arranges `rows` (this worker's output rows) for reads, counting them for `/metrics`.
pub fn arrange(rows: VecCollection<'_, Time, OutputRow, Diff>, windows: Windows, serving: &Arc<Serving>) -> Arranged {
    let counts = Arc::clone(serving);
    let rows = rows.inspect(move |(row, _, diff)| {
        counts.rows[row.output().index()].fetch_add(*diff as i64, Ordering::Relaxed);
    });
    Arranged { traces: arrange_outputs(rows.clone(), windows), last: final_upper(rows) }
}

/// A worker's arrangements, before the read dataflow is built.
pub struct Arranged {
    traces: OutputTraces,
    last: Rc<Cell<Option<Time>>>,
}

impl WorkerServing {
    /// Builds the read dataflow on `worker` over `arranged`.
    pub fn build(worker: &mut Worker, arranged: Arranged, serving: Arc<Serving>, schedule: Schedule) -> WorkerServing {
        let traces = Rc::new(RefCell::new(arranged.traces));
        let index = worker.index();
        let peers = worker.peers();
        let waiting: Rc<RefCell<HashMap<u64, Waiting>>> = Rc::default();
        let mut address = None;
        let wake = worker.dataflow::<u64, _, _>(|scope| {
            let mut wake = Vec::new();
            let mut requests = Requests {
                receiver: if index == 0 { serving.requests.lock().ok().and_then(|mut r| r.take()) } else { None },
                traces: Rc::clone(&traces),
                last: Rc::clone(&arranged.last),
                waiting: Rc::clone(&waiting),
                peers,
                next_id: 0,
                schedule,
                last_dump: (Instant::now(), 0),
                final_issued: false,
                final_next: 0,
                deadline: None,
            };
            let peeks = source::<_, CapacityContainerBuilder<Vec<Peek>>, _, _>(scope, "Requests", |cap, info| {
                wake.push(scope.activator_for(Rc::clone(&info.address)));
                let mut cap = (index == 0).then_some(cap);
                address = Some(info.address.to_vec());
                let me = scope.activator_for(Rc::clone(&info.address));
                move |output| {
                    let Some(held) = cap.as_mut() else { return };
                    let peeks = requests.activate(&me);
                    if !peeks.is_empty() {
                        output.session(&*held).give_iterator(peeks.into_iter());
                        let next = held.time() + 1;
                        held.downgrade(&next);
                    }
                    if requests.finished(&me) {
                        cap = None;
                    }
                }
            });
            let reader = Rc::clone(&traces);
            let parts = peeks.broadcast().unary_frontier::<CapacityContainerBuilder<Vec<Part>>, _, _, _>(
                Pipeline,
                "Peek",
                |_cap, info| {
                    wake.push(scope.activator_for(Rc::clone(&info.address)));
                    let mut pending = Vec::new();
                    move |(input, _frontier), output| {
                        input.for_each_stamp(|cap, data| {
                            for batch in data {
                                for peek in batch.drain(..) {
                                    if let Some(cap) = cap.retain_least(0) {
                                        pending.push((cap, peek));
                                    }
                                }
                            }
                        });
                        let mut traces = reader.borrow_mut();
                        pending.retain(|(cap, peek): &(_, Peek)| {
                            if !traces.readable(peek.upper) {
                                return true;
                            }
                            // (Nothing is below frontier 0: a read there holds nothing to lose.)
                            let held = traces.upper().is_none() || peek.upper == 0 || peek.upper >= traces.oldest();
                            let rows = held.then(|| peek.outputs.iter().map(|o| traces.read(*o, peek.upper)).collect());
                            output.session(cap).give((peek.id, rows));
                            false
                        });
                    }
                },
            );
            parts.sink(Exchange::new(|_| 0), "Answers", move |(input, _frontier)| {
                input.for_each(|_cap, data| {
                    for (id, rows) in data.drain(..) {
                        merge(&waiting, id, rows);
                    }
                });
            });
            wake
        });
        // Reads from other threads wake worker 0's source (and unpark the worker).
        if let (0, Some(address)) = (index, address)
            && let Ok(mut slot) = serving.wake.lock()
        {
            *slot = Some(worker.sync_activator_for(address));
        }
        WorkerServing { traces, last_upper: arranged.last, wake, seen: None, serving, index }
    }

    /// Compacts the traces, and wakes the read operators when the frontier has moved (a
    /// read may have been waiting for it). Call it from the worker's loop.
    pub fn step(&mut self) {
        let now = (self.traces.borrow_mut().advance(), self.last_upper.get());
        if self.seen != Some(now) {
            self.seen = Some(now);
            if self.index == 0 {
                let upper = now.1.or(now.0).unwrap_or(0);
                self.serving.upper.store(upper, Ordering::Relaxed);
                self.serving.changes.send_replace(upper);
            }
            for activator in &self.wake {
                activator.activate();
            }
        }
    }
}

/// A read whose parts are still coming in.
struct Waiting {
    reply: Reply,
    answer: Answer,
    /// Some worker no longer held the frontier.
    too_old: bool,
    parts_left: usize,
    dumps: Option<Sender<DumpJob>>,
}

/// Adds one worker's part to read `id`, and delivers the read once every part is in.
fn merge(waiting: &Rc<RefCell<HashMap<u64, Waiting>>>, id: u64, rows: Option<Vec<Vec<OutputRow>>>) {
    let mut waiting = waiting.borrow_mut();
    let Some(read) = waiting.get_mut(&id) else { return };
    match rows {
        Some(rows) => {
            for ((_, table), part) in read.answer.tables.iter_mut().zip(rows) {
                // The first part is moved in, not copied (one worker: the only part).
                if table.is_empty() {
                    *table = part;
                } else {
                    table.extend(part);
                }
            }
        }
        None => read.too_old = true,
    }
    read.parts_left = read.parts_left.saturating_sub(1);
    if read.parts_left > 0 {
        return;
    }
    let Some(mut read) = waiting.remove(&id) else { return };
    for (_, table) in &mut read.answer.tables {
        table.sort_unstable();
    }
    let upper = read.answer.upper;
    match read.reply {
        Reply::Clients(replies) if read.too_old => {
            for reply in replies {
                let _ = reply.send(Err(format!("logical upper {upper} is no longer held by every worker")));
            }
        }
        Reply::Clients(replies) => {
            let answer = Arc::new(read.answer);
            for reply in replies {
                let _ = reply.send(Ok(Arc::clone(&answer)));
            }
        }
        Reply::Dump(last) => {
            if let Some(dumps) = read.dumps {
                let _ = dumps.send((read.answer, last));
            }
        }
    }
}

/// Worker 0's `Requests` source: fixes each read's frontier (module docs).
struct Requests {
    receiver: Option<Receiver<Request>>,
    traces: Rc<RefCell<OutputTraces>>,
    last: Rc<Cell<Option<Time>>>,
    waiting: Rc<RefCell<HashMap<u64, Waiting>>>,
    peers: usize,
    next_id: u64,
    schedule: Schedule,
    /// When the last periodic dump was asked for, and at which frontier.
    last_dump: (Instant, Time),
    final_issued: bool,
    /// The next table of the final dump.
    final_next: usize,
    deadline: Option<Instant>,
}

impl Requests {
    /// The frontier reads are answered at now, and whether the input has ended; `None`
    /// while the input has ended but its last time is not known yet.
    fn newest(&self) -> Option<(Time, bool)> {
        if let Some(last) = self.last.get() {
            return Some((last, true));
        }
        self.traces.borrow_mut().upper().map(|u| (u, false))
    }

    /// The reads to send to every worker now.
    fn activate(&mut self, me: &Activator) -> Vec<Peek> {
        let mut peeks = Vec::new();
        let Some((newest, complete)) = self.newest() else { return peeks };
        let oldest = self.traces.borrow().oldest();
        let requests: Vec<Request> = self.receiver.as_ref().map(|r| r.try_iter().collect()).unwrap_or_default();
        // Reads of the same tables at the same frontier share one read of the shards.
        let mut shared: Vec<(Vec<Output>, Time, Vec<ClientReply>)> = Vec::new();
        for request in requests {
            let upper = match request.as_of {
                AsOf::Latest => newest,
                AsOf::Upper(u) if u > newest => {
                    let _ = request
                        .reply
                        .send(Err(format!("AS OF {u} is not complete yet: the newest readable upper is {newest}")));
                    continue;
                }
                AsOf::Upper(u) if u < oldest && u != newest => {
                    let _ = request
                        .reply
                        .send(Err(format!("AS OF {u} is no longer held: the oldest readable upper is {oldest}")));
                    continue;
                }
                AsOf::Upper(u) => u,
            };
            match shared.iter_mut().find(|(outputs, at, _)| *outputs == request.outputs && *at == upper) {
                Some((_, _, replies)) => replies.push(request.reply),
                None => shared.push((request.outputs, upper, vec![request.reply])),
            }
        }
        for (outputs, upper, replies) in shared {
            peeks.push(self.issue(outputs, upper, complete && upper == newest, Reply::Clients(replies)));
        }
        let dumps = self.schedule.dumps.is_some();
        if let Some(every) = self.schedule.every.filter(|_| dumps)
            && !complete
            && newest > self.last_dump.1
            && self.last_dump.0.elapsed() >= every
            && !self.schedule.dump_busy.swap(true, Ordering::AcqRel)
        {
            self.last_dump = (Instant::now(), newest);
            peeks.push(self.issue(Output::ALL.to_vec(), newest, false, Reply::Dump(false)));
        }
        // (`--snapshot-every 0s`: a dump per new frontier, woken by `WorkerServing::step`.)
        if let Some(every) = self.schedule.every.filter(|e| dumps && !complete && !e.is_zero()) {
            me.activate_after(every);
        }
        // The final dump, one table at a time (the writer wakes this source after each), so
        // that at most one table is copied out of the traces at once.
        if complete && dumps && !self.final_issued && !self.schedule.dump_busy.swap(true, Ordering::AcqRel) {
            let output = Output::ALL[self.final_next];
            self.final_next += 1;
            self.final_issued = self.final_next == Output::ALL.len();
            peeks.push(self.issue(vec![output], newest, true, Reply::Dump(true)));
        }
        peeks
    }

    /// Registers a read at `upper` and returns it for the workers.
    fn issue(&mut self, outputs: Vec<Output>, upper: Time, complete: bool, reply: Reply) -> Peek {
        let id = self.next_id;
        self.next_id += 1;
        let answer = Answer { upper, complete, tables: outputs.iter().map(|o| (*o, Vec::new())).collect() };
        let dumps = self.schedule.dumps.clone();
        self.waiting.borrow_mut().insert(id, Waiting { reply, answer, too_old: false, parts_left: self.peers, dumps });
        Peek { id, outputs, upper }
    }

    /// Whether the source may end: the input has ended, the final dump is asked for, and
    /// the linger time is over (until then it wakes itself at the deadline).
    fn finished(&mut self, me: &Activator) -> bool {
        if self.last.get().is_none() {
            return false;
        }
        if self.schedule.dumps.is_some() && !self.final_issued {
            return false;
        }
        let deadline = *self.deadline.get_or_insert_with(|| Instant::now() + self.schedule.linger);
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // Later reads are refused at once instead of waiting for the timeout.
            self.receiver = None;
            return true;
        }
        me.activate_after(left);
        false
    }
}
