//! Topic administration the program does itself: the sinks' compacted
//! progress topic is created when it is missing.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use anyhow::anyhow;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::KafkaConfig;

/// Creates `topic` as a compacted topic of one partition (the broker's default replication)
/// unless it exists.
pub fn ensure_compacted_topic(cfg: &KafkaConfig, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        cfg.client_config().create().map_err(|e| anyhow!("cannot create a Kafka admin client: {e}"))?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1)).set("cleanup.policy", "compact");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = block_on(admin.create_topics([&new], &options))
        .map_err(|e| anyhow!("cannot create the progress topic {topic}: {e}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(anyhow!("cannot create the progress topic {name}: {code}")),
        }
    }
    Ok(())
}

/// Runs `future` to completion on this thread. rdkafka's admin futures are completed by its
/// own background thread, so parking until woken is all an executor has to do.
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}
