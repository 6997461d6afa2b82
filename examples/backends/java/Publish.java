// Appends one event to a roomlog room with the Java client (kafka-clients): the Java snippet of docs/backends.md.
//   BROKERS=127.0.0.1:9092 TOPIC=roomlog.events ROOM=lobby TEXT=hi java -cp 'libs/*' Publish.java
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

public class Publish {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, System.getenv("BROKERS"));
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        // No partitioner setting: the Java client's default hashes keys with murmur2, roomlog's own rule.
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            String data = "{\"text\":\"" + System.getenv("TEXT").replace("\\", "\\\\").replace("\"", "\\\"") + "\"}";
            ProducerRecord<String, String> rec = new ProducerRecord<>(System.getenv("TOPIC"), System.getenv("ROOM"), data);
            rec.headers().add("rl-type", "publish".getBytes(StandardCharsets.UTF_8));
            rec.headers().add("rl-event", "chat".getBytes(StandardCharsets.UTF_8));
            RecordMetadata md = producer.send(rec).get();
            System.err.println("appended to partition " + md.partition() + " at offset " + md.offset());
        }
    }
}
