"""The moderation path end to end at scale, with real processes: 1,000 images under an S3 prefix,
one batch with an output location and a webhook_url, one signed `batch.completed` callback
verified with `standardwebhooks`, and the JSONL of every verdict. Writes
bench/results/moderation-run.json.

    .venv/bin/python scripts/moderation_run.py [--images 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from scripts.fault_drills import test_weights  # noqa: E402
from tests import services  # noqa: E402
from tests.integration.test_batches import small_faces  # noqa: E402
from tests.integration.test_faults import fault_stack  # noqa: E402
from tests.integration.test_webhooks import Receiver  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "moderation-run.json"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()
    import tempfile

    from standardwebhooks.webhooks import Webhook

    with tempfile.TemporaryDirectory(prefix="unmask-moderation-") as tmp:
        work = Path(tmp)
        weights = test_weights(work)
        os.environ["UNMASK_WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"
        with (
            services.seaweedfs(work / "s3") as s3_url,
            fault_stack(work, weights, s3_url, services.REDIS_URL.replace("/11", "/15")) as (
                env,
                http,
                url,
                sessions,
                store,
            ),
        ):
            env = {**env, "UNMASK_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}
            services.flush_redis(env["UNMASK_BROKER_URL"])
            store.client.create_bucket(Bucket="moderation")
            pictures = small_faces()
            for i in range(args.images):
                store.client.put_object(
                    Bucket="moderation", Key=f"uploads/{i:05d}.jpg", Body=pictures[i % len(pictures)]
                )
            from unmask.core.keys import TenantService

            TenantService(sessions=sessions).allow_s3(tenant="drill", location="s3://moderation/")
            secret = http.post(f"{url}/v1/webhooks/secret").json()["secret"]
            hook = Receiver(services.free_port())
            with (
                services.worker_process(env, work / "worker.log"),
                services.worker_process(env, work / "webhooks.log", "--queue", "webhooks"),
            ):
                started = time.monotonic()
                created = http.post(
                    f"{url}/v1/batches",
                    json={
                        "source": {"s3": {"bucket": "moderation", "prefix": "uploads/"}},
                        "output": {"bucket": "moderation", "key": "results/verdicts.jsonl"},
                        "webhook_url": hook.url,
                    },
                ).json()
                while not hook.calls:
                    time.sleep(1)
                    assert time.monotonic() - started < 3600, "no callback within an hour"
                elapsed = time.monotonic() - started
                # The output is written by a task queued at completion; a second callback, were
                # there one, would arrive meanwhile.
                deadline = time.monotonic() + 300
                while not store.client.list_objects_v2(Bucket="moderation", Prefix="results/").get(
                    "KeyCount"
                ):
                    assert time.monotonic() < deadline, "the output was not written"
                    time.sleep(1)
                written_after = time.monotonic() - started
                time.sleep(2)
            signer = Webhook(secret)
            verified = [signer.verify(body, {k.lower(): v for k, v in h.items()}) for h, body in hook.calls]
            hook.stop()
            export = http.get(f"{url}/v1/batches/{created['id']}/results.jsonl", timeout=300)
            rows = [json.loads(line) for line in export.text.splitlines()]
            keys = {r["source"]["s3"]["key"] for r in rows}
            written = store.client.get_object(Bucket="moderation", Key="results/verdicts.jsonl")[
                "Body"
            ].read()
            batch = verified[0]["data"]
            result = {
                "images": args.images,
                "callbacks": len(hook.calls),
                "callback_type": verified[0]["type"],
                "signature_verified": True,
                "seconds_to_callback": round(elapsed, 1),
                "seconds_to_output_written": round(written_after, 1),
                "images_per_second": round(args.images / elapsed, 2),
                "batch_counts": batch["counts"],
                "jsonl_rows": len(rows),
                "jsonl_distinct_items": len(keys),
                "output_rows": len(written.decode().splitlines()),
                "machine": {
                    "host": platform.node(),
                    "cpus": os.cpu_count(),
                    "device": "cpu",
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                },
            }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
