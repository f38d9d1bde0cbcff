"""Data teams' view: Confluent's stock Python AvroDeserializer decodes every message that
ltf wrote to the four event topics (the wire format and the schemas are exact)."""
import json
import uuid
from collections import Counter

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

AGGREGATES = ["table", "automation", "connection", "form"]
EVENT_TYPES = {"record-created", "record-updated", "record-deleted", "automation-triggered",
               "action-executed", "connection-established", "form-submitted"}


def read_all(bootstrap, topics):
    # The relay writes in transactions: read what was committed, as the README asks of readers.
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"xlang-{uuid.uuid4()}",
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    ends, assignment = {}, []
    for topic in topics:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        assert md.error is None, f"{topic}: {md.error}"
        for p in md.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[(topic, p)] = high
                assignment.append(TopicPartition(topic, p, low))
    consumer.assign(assignment)

    def unread():
        # Offsets count transaction markers too, which are never delivered: a partition
        # is read once the consumer's position reached its end.
        positions = consumer.position([TopicPartition(t, p) for (t, p) in ends])
        return [(tp.topic, tp.partition) for tp in positions if tp.offset < ends[(tp.topic, tp.partition)]]

    msgs = []
    idle = 0
    while idle < 50:
        m = consumer.poll(0.2)
        if m is None:
            idle += 1
            if not unread():
                break
            continue
        assert m.error() is None, m.error()
        msgs.append(m)
        idle = 0
    left = unread()
    consumer.close()
    assert not left, f"partitions not read to their end: {left}"
    return msgs


def test_stock_deserializer_decodes_every_message(pytestconfig):
    prefix = pytestconfig.getoption("prefix")
    topics = [f"{prefix}.{a}.events" for a in AGGREGATES]
    sr = SchemaRegistryClient({"url": pytestconfig.getoption("registry")})
    deserialize = AvroDeserializer(sr)
    msgs = read_all(pytestconfig.getoption("bootstrap"), topics)
    assert msgs, "the demo wrote nothing"
    types, versions = Counter(), Counter()
    for m in msgs:
        headers = {k: v.decode() for k, v in (m.headers() or [])}
        event = deserialize(m.value(), SerializationContext(m.topic(), MessageField.VALUE, m.headers()))
        assert str(event["eventId"]) == headers["event-id"]
        assert event["eventType"] == headers["event-type"]
        assert str(event["version"]) == headers["event-version"]
        assert event["aggregateId"] == m.key().decode()
        assert m.topic() == f"{prefix}.{event['aggregateType']}.events"
        assert event["correlationId"] == headers["correlation-id"]
        assert event.get("causationId") == headers.get("causation-id")
        payload = event["payload"]
        if event["aggregateType"] == "table":
            assert payload["recordId"] == headers["ordering-key"]
            assert event["recordVersion"] >= 1
        for key in ("fields", "previousFields", "currentFields", "deletedFields", "triggerData", "data"):
            for name, value in (payload.get(key) or {}).items():
                # Nested JSON arrives as the JsonText record: it parses back to JSON.
                if isinstance(value, dict):
                    assert set(value) == {"json"}
                    json.loads(value["json"])
        types[event["eventType"]] += 1
        if event["eventType"] == "record-created":
            versions[event["version"]] += 1
            if event["version"] == 2:
                assert "createdBy" in payload
    assert set(types) == EVENT_TYPES, types
    assert set(versions) == {1, 2}, versions
