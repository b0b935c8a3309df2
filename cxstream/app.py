"""The Faust app factory: settings in, a wired app out (table, processor, web views).

Guardrails from the project's stream notes are applied here, in one place: Faust reads no
environment variables (it gets an empty `env`), its built-in web views are off and the web
server binds 127.0.0.1 unless configured, standby replicas are 0 for small clusters, one
processor handles the inputs in order (`cxstream.worker.consumer`), and offsets are committed often.
"""

from __future__ import annotations

import faust
from faust.web.drivers.aiohttp import Web as _AiohttpWeb

from pathlib import Path

from cxstream.api import routes
from cxstream.notify import routing
from cxstream.worker import faust_patches, gap_watch, processor as processing, recovery_watch
from cxstream.kafka.security import faust_credentials
from cxstream.notify.notifier import Notifier
from cxstream.config.settings import Settings
from cxstream.kafka.topics import STATE_TABLE

# Faust always mounts its index page at "/" in production mode; cxstream serves only its
# own endpoints, so that blueprint goes too (the others have settings, used below).
_AiohttpWeb.production_blueprints = []


#: Faust's RocksDB defaults size caches for big hosts (GiBs per partition); these keep a
#: worker with a few partitions in a few hundred MB: per partition, at most 2 × 16 MB of
#: write buffers (recent writes, read first) and 16 MB of block cache (uncompressed blocks of
#: older data; the OS page cache keeps the files themselves). The block cache fills with
#: whatever flows through, so a larger one raises the worker's peak memory without raising
#: its rate (figures: docs/performance.md).
ROCKSDB_OPTIONS = {
    "block_cache_size": 16 * 1024**2,
    "block_cache_compressed_size": 0,
    "write_buffer_size": 16 * 1024**2,
    "max_write_buffer_number": 2,
    "max_open_files": 512,
}


def create_app(settings: Settings) -> faust.App:
    """The worker's Faust app for `settings`, wired and not started.

    Applies the Faust fixes (`cxstream.worker.faust_patches`, once per process), creates
    `<data_dir>/worker`, and configures Faust: the guardrails of the module docstring, raw
    keys and values, the earliest offset for a group without offsets, and one fetch of at
    most `batch_size` records per batch of the processor. Declares the state
    table (RocksDB sized by `ROCKSDB_OPTIONS`, or in memory), and registers the processor
    on the input topics (`cxstream.worker.processor`), the HTTP views
    (`cxstream.api.routes`), the offset-gap and recovery watches and, when `notify_config`
    is set, the notifier as a task of the app. Nothing connects to Kafka here: the app
    does when it starts.

    Raises OSError when the data directory cannot be created, and what
    `cxstream.notify.routing.load` raises for a routing file it cannot read or use.

    Guarantee: every app built here processes input through the batching consumer and the
    processor, so its state and alerts keep `Processor.process`'s guarantees. Create the
    topics before starting it (`cxstream.kafka.admin.ensure_topics`, as `cxstream worker`
    does)."""
    faust_patches.apply()
    (settings.data_dir / "worker").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.group_id,
        env={},
        broker=settings.broker,
        broker_credentials=faust_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir / "worker" / "{conf.id}"),
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        table_standby_replicas=0,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(0.5, min(3.0, settings.session_timeout / 4)),
        broker_commit_every=1000,
        # One fetch is one batch of the processor (`cxstream.worker.consumer`).
        broker_max_poll_records=settings.batch_size,
        # A batch's state entries of a partition go out as few record batches as fit.
        producer_max_batch_size=256 * 1024,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=1024,
        web_bind=settings.web_bind,
        web_port=settings.web_port,
        web_host=settings.web_host,
        web_tables_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
    )
    # Keys are str, values JSON (the table's default codec when no model type is given).
    state = app.Table(STATE_TABLE, default=None, partitions=settings.partitions,
                      help="customers, segment buckets and stream time, per input partition",
                      options=ROCKSDB_OPTIONS if settings.store == "rocksdb://" else None)
    processor = processing.register(app, settings, state)
    routes.register(app, settings, processor)
    gap_watch.register(app, processor.kinds)
    recovery_watch.register(app)
    if settings.notify_config:
        notifier = Notifier(settings, routing.load(Path(settings.notify_config)))

        @app.task
        async def notify() -> None:
            # Supervised (`Notifier.run`): returns only when cancelled, so no notification
            # failure can leave this task and stop the worker.
            await notifier.run()

    return app
