// Reads clients' events from the roomlog topic in a consumer group with the Java client and prints the first
// publish to ROOM: the Java snippet of docs/backends.md.
//   BROKERS=127.0.0.1:9092 TOPIC=roomlog.events GROUP=my-backend ROOM=lobby java -cp 'libs/*' Consume.java
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;

public class Consume {
    static String header(ConsumerRecord<String, String> r, String key) {
        Header h = r.headers().lastHeader(key);
        return h == null ? "" : new String(h.value(), StandardCharsets.UTF_8);
    }

    public static void main(String[] args) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, System.getenv("BROKERS"));
        props.put(ConsumerConfig.GROUP_ID_CONFIG, System.getenv("GROUP"));
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(System.getenv("TOPIC")));
            long deadline = System.currentTimeMillis() + 60_000;
            while (System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    if (!header(r, "rl-type").equals("publish") || !System.getenv("ROOM").equals(r.key())) {
                        continue;
                    }
                    System.out.println(r.key() + " " + header(r, "rl-event") + " " + header(r, "rl-user") + " " + r.value());
                    consumer.commitSync();
                    return;
                }
            }
            System.err.println("no publish to the room within 60s");
            System.exit(1);
        }
    }
}
