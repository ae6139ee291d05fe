// Waits until a Kafka broker answers and makes sure topics exist: one JVM for what would
// otherwise be a kafka-topics.sh run per topic. Run from Kafka's classpath, as a source file:
//
//   scripts/kafka-tool.sh ensure-topics BOOTSTRAP PARTITIONS WAIT_SECONDS TOPIC...
//
// Polls the broker with a metadata request (list topics) for at most WAIT_SECONDS, then
// creates each TOPIC that does not exist yet with PARTITIONS partitions and replication
// factor 1, and prints one line per topic created. Exits 1 when the broker does not answer
// in time or a creation fails for another reason than the topic existing.

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.errors.TopicExistsException;

public class KafkaTopics {
    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: KafkaTopics BOOTSTRAP PARTITIONS WAIT_SECONDS TOPIC...");
            System.exit(2);
        }
        int partitions = Integer.parseInt(args[1]);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[2]));
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "10000");
        try (Admin admin = Admin.create(props)) {
            Set<String> existing = waitForTopics(admin, deadline, args[0]);
            List<NewTopic> missing = new ArrayList<>();
            for (int i = 3; i < args.length; i++) {
                if (!existing.contains(args[i])) {
                    missing.add(new NewTopic(args[i], partitions, (short) 1));
                }
            }
            boolean failed = false;
            for (Map.Entry<String, KafkaFuture<Void>> created : admin.createTopics(missing).values().entrySet()) {
                try {
                    created.getValue().get();
                    System.out.println("created topic " + created.getKey() + " (" + partitions + " partitions)");
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) {
                        System.err.println("topic " + created.getKey() + ": " + e.getCause().getMessage());
                        failed = true;
                    }
                }
            }
            System.exit(failed ? 1 : 0);
        }
    }

    /** The broker's topics, once it answers a metadata request; exits 1 at the deadline. */
    private static Set<String> waitForTopics(Admin admin, long deadline, String bootstrap) throws InterruptedException {
        while (true) {
            try {
                return admin.listTopics().names().get(5, TimeUnit.SECONDS);
            } catch (Exception e) {
                if (System.nanoTime() > deadline) {
                    System.err.println("no Kafka broker answers on " + bootstrap + ": " + e);
                    System.exit(1);
                }
                Thread.sleep(250);
            }
        }
    }
}
