"""Streaming ingestion: events through a broker, checked on arrival, landed in micro-batches, scored live.

producer.py    replays a use case's rows as events, at a rate, with faults on request
broker.py      the port (``Broker``) and its Redis Streams adapter
events.py      the wire format: an event's bytes to a row, or to the reason it is not one
checks.py      the batch suite's expectations, evaluated per event (GX stays the batch gate)
alerts.py      the YAML's thresholds as state machines: fire once, resolve once
consumer.py    the consumer: exactly once in effect across crashes and redeliveries
scoring.py     accepted events sent to the serving service, so predictions are logged and monitored
notify.py      alert changes to a webhook and to Prefect
background.py  the queue-backed thread the scorer and the notifier share
app.py         the consumer process's composition root (``mlops stream consume``)
bench.py       throughput and latency at several loads (``mlops stream bench``)
"""
