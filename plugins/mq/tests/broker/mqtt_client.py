#!/usr/bin/python3
"""A real MQTT client (Debian's python3-paho-mqtt) for the mq integration tests: 3.1.1, or 5.0
with --v5 (a session that is not clean then outlives its connection by --expiry seconds).

  sub   subscribes and appends every payload it receives, one per line, to --out; writes
        --out.ready each time the SUBACK arrives; reconnects whenever the connection drops;
        stops when --out.stop exists or after --duration seconds.
  pub   publishes --count numbered payloads ("0", "1", ...) at --qos and appends the number
        of every one acknowledged (PUBACK, or PUBCOMP for QoS 2) to --out, with --stamp followed
        by the time it was (seconds since the Unix epoch); keeps going through disconnections;
        stops once all are acknowledged or after --duration seconds.
  will  connects with a will (--topic, --message) and waits to be killed.
  ticks publishes QoS 0 ticks to --topic every --interval and receives them on the same
        connection; writes --out.ready once subscribed; when --out.stop exists, writes to --out
        "received N max_gap_ms G": the ticks received and the longest silence between two.

Every mode is bounded by --duration, so a test that loses track of it still ends.
"""
import argparse
import os
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def append(path, line):
    with open(path, "a") as f:
        f.write(line + "\n")
        f.flush()


def make_client(args, clean):
    if args.v5:
        # 5.0 says clean start at connect(), with the session expiry, and keeps both for
        # reconnects.
        client = mqtt.Client(client_id=args.id, protocol=mqtt.MQTTv5)
    else:
        client = mqtt.Client(client_id=args.id, clean_session=clean, protocol=mqtt.MQTTv311)
    client.emsnode_clean = clean
    client.reconnect_delay_set(min_delay=args.reconnect, max_delay=args.reconnect)
    client.max_inflight_messages_set(args.inflight)
    client.max_queued_messages_set(0)
    return client


def connect_once(client, args):
    if not args.v5:
        client.connect("127.0.0.1", args.port, keepalive=args.keepalive)
        return
    properties = Properties(PacketTypes.CONNECT)
    if not client.emsnode_clean:
        properties.SessionExpiryInterval = args.expiry
    client.connect("127.0.0.1", args.port, keepalive=args.keepalive,
                   clean_start=client.emsnode_clean, properties=properties)


def connect(client, args):
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        try:
            connect_once(client, args)
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("never connected to 127.0.0.1:%d" % args.port)


def subscriber(args):
    client = make_client(args, args.clean)

    def on_connect(c, userdata, flags, rc, properties=None):
        if rc == 0:
            c.subscribe(args.topic, qos=args.qos)

    def on_subscribe(c, userdata, mid, granted, properties=None):
        append(args.out + ".ready", "subscribed")

    def on_message(c, userdata, message):
        append(args.out, message.payload.decode())

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    connect(client, args)
    client.loop_start()
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline and not os.path.exists(args.out + ".stop"):
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()


def publisher(args):
    client = make_client(args, args.clean)
    acked = set()
    numbers = {}

    def on_publish(c, userdata, mid):
        number = numbers.get(mid)
        if number is not None and number not in acked:
            acked.add(number)
            append(args.out, "%d %.3f" % (number, time.time()) if args.stamp else str(number))

    client.on_publish = on_publish
    connect(client, args)
    client.loop_start()
    for number in range(args.count):
        info = client.publish(args.topic, str(number), qos=args.qos)
        numbers[info.mid] = number
        time.sleep(args.interval)
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline and len(acked) < args.count:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    sys.exit(0 if len(acked) == args.count else 3)


def will(args):
    client = make_client(args, True)
    client.will_set(args.topic, args.message, qos=1)
    connected = []
    client.on_connect = lambda c, u, f, rc, p=None: connected.append(rc)
    connect(client, args)
    client.loop_start()
    deadline = time.monotonic() + args.duration
    while not connected and time.monotonic() < deadline:
        time.sleep(0.02)
    append(args.out, "connected")
    while time.monotonic() < deadline:
        time.sleep(0.1)


def ticks(args):
    client = make_client(args, True)
    arrivals = []
    subscribed = []

    def on_connect(c, userdata, flags, rc, properties=None):
        if rc == 0:
            c.subscribe(args.topic, qos=0)

    def on_subscribe(c, userdata, mid, granted, properties=None):
        subscribed.append(True)
        append(args.out + ".ready", "subscribed")

    def on_message(c, userdata, message):
        if subscribed:
            arrivals.append(time.monotonic())

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    connect(client, args)
    client.loop_start()
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline and not os.path.exists(args.out + ".stop"):
        client.publish(args.topic, "tick", qos=0)
        time.sleep(args.interval)
    client.disconnect()
    client.loop_stop()
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    append(args.out, "received %d max_gap_ms %d" % (len(arrivals), max(gaps, default=0) * 1000))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["sub", "pub", "will", "ticks"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--id", default="")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--qos", type=int, default=1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--clean", action="store_true")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.0)
    parser.add_argument("--inflight", type=int, default=20)
    parser.add_argument("--keepalive", type=int, default=10)
    parser.add_argument("--message", default="")
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--v5", action="store_true")
    parser.add_argument("--expiry", type=int, default=3600)
    parser.add_argument("--reconnect", type=float, default=1, help="seconds between reconnects")
    parser.add_argument("--stamp", action="store_true")
    args = parser.parse_args()
    {"sub": subscriber, "pub": publisher, "will": will, "ticks": ticks}[args.mode](args)


if __name__ == "__main__":
    main()
