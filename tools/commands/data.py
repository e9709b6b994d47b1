"""`data ...` and `produce`: events into the master dataset or onto Kafka."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

from lambdastack.settings import Settings
from tools.commands import settings_of


def load_movielens(s: Settings, folder: Path) -> int:
    from lambdastack.master import append, write_catalogue, write_tags
    from tools.datasets.movielens import read_folder

    data = read_folder(folder)
    n = append(data.events, s.path(s.data.master_dir), load_id=f"movielens-{uuid.uuid4().hex[:8]}")
    write_catalogue(data.items, s.path(s.data.catalogue_dir))
    write_tags(data.tags, s.path(s.data.catalogue_dir))
    print(
        f"loaded {n} events, {data.items.num_rows} items and {data.tags.num_rows} dated tags "
        f"from {folder} ({data.source_format} format)"
    )
    for line, reason in data.rejected[:20]:
        print(f"  rejected line {line}: {reason}", file=sys.stderr)
    if data.rejected:
        print(f"  {len(data.rejected)} rows rejected (listed above, first 20)", file=sys.stderr)
    return n


def data_load_movielens(args: argparse.Namespace) -> int:
    load_movielens(settings_of(args), Path(args.dir))
    return 0


def data_generate(args: argparse.Namespace) -> int:
    from lambdastack.master import append, write_catalogue
    from tools.datasets.synthetic import generate

    s = settings_of(args)
    end = int(time.time() * 1000)
    start = end - args.days * 86_400_000
    events, items = generate(args.users, args.items, args.events, args.seed, start_ms=start, days=args.days)
    if args.output:
        from lambdastack.events import format_time

        with open(args.output, "w") as f:
            for row in events.to_pylist():
                row["event_time"] = format_time(int(row["event_time"].timestamp() * 1000))
                f.write(json.dumps(row, separators=(",", ":")) + "\n")
        print(f"wrote {events.num_rows} events to {args.output}")
        return 0
    n = append(events, s.path(s.data.master_dir), load_id=f"synthetic-{args.seed}-{end}")
    write_catalogue(items, s.path(s.data.catalogue_dir))
    print(
        f"generated {n} events, {items.num_rows} items, {args.users} users into {s.path(s.data.master_dir)}"
    )
    return 0


def produce(args: argparse.Namespace) -> int:
    from lambdastack.producer import EventProducer, send_lines

    s = settings_of(args)
    with EventProducer(s) as producer:
        if args.file:
            src = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
            with src:
                sent, dead = send_lines(producer, src, args.rate, source=args.file)
        else:
            from tools.simulate import burst, stream

            events = burst(args.item, args.user, args.count) if args.item else stream(args.rate, args.seconds)
            sent, dead = 0, 0
            for event in events:
                producer.send(event)
                sent += 1
            producer.flush()
        failed = list(producer.failures)
    delivered = sent + dead - len(failed)
    print(
        f"sent {sent} events to {s.topics.events}; {dead} invalid sent to {s.topics.dead_letter}"
        + (f"; {len(failed)} NOT delivered" if failed else "")
    )
    if failed:
        for where, reason in failed[:20]:
            print(f"  not delivered: {where}: {reason}", file=sys.stderr)
        print(
            f"{len(failed)} of {sent + dead} records were not delivered to Kafka (listed above, first "
            f"20; {delivered} were); send them again: events are idempotent by event_id",
            file=sys.stderr,
        )
        return 1
    return 0
