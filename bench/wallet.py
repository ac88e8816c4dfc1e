"""Wallet.Credit throughput: ledger entries posted per second, by batch size.

    python -m bench.wallet                    # embedded SecantusDB (started here)
    MONGODB_URI=mongodb://…/?replicaSet=rs0 python -m bench.wallet   # a real mongod

Runs ``python -m services.wallet`` as its own process on a throwaway
database, then for each batch size (1, 10, 100 by default) sends Credit
calls with fresh keys from ``--clients`` concurrent callers for
``--seconds`` seconds, spread over ``--users`` accounts, and prints entries
per second and the median call latency. Every batch is one transaction
(entries + one ``$inc`` per account), so throughput grows with the batch.
Afterwards ``reconcile`` must report zero differences.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc

from minequest.common.v1 import common_pb2
from minequest.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from runtime.embedded import EmbeddedMongo, free_port

ROOT = Path(__file__).resolve().parents[1]


async def run_batch_size(
    target: str, batch: int, clients: int, seconds: float, users: list[str]
) -> tuple[float, float, int]:
    """(entries per second, median latency in ms, entries posted)."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = wallet_pb2_grpc.WalletServiceStub(channel)
        latencies: list[float] = []
        posted = 0
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal posted
            while time.perf_counter() < deadline:
                request = wallet_pb2.CreditRequest(
                    entries=[
                        wallet_pb2.CreditEntry(
                            user_id=random.choice(users),
                            amount=common_pb2.Money(currency="MQC", units=random.randint(1, 10**6)),
                            source="bench.click",
                            source_id=uuid.uuid4().hex,
                        )
                        for _ in range(batch)
                    ]
                )
                started = time.perf_counter()
                reply = await stub.Credit(request, timeout=60)
                latencies.append(time.perf_counter() - started)
                posted += sum(result.applied for result in reply.results)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    return posted / elapsed, statistics.median(latencies) * 1000, posted


def wait_ready(target: str, process: subprocess.Popen[bytes]) -> None:
    with grpc.insecure_channel(target) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=60)
        except grpc.FutureTimeoutError:
            process.kill()
            raise SystemExit("the wallet service did not start") from None


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wallet")
    parser.add_argument("--batches", default="1,10,100", help="batch sizes (comma-separated)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent callers")
    parser.add_argument("--seconds", type=float, default=4.0, help="duration per batch size")
    parser.add_argument("--users", type=int, default=1000, help="accounts credited")
    args = parser.parse_args()
    batches = [int(size) for size in args.batches.split(",")]
    users = [uuid.uuid4().hex for _ in range(args.users)]

    with tempfile.TemporaryDirectory(prefix="bench-wallet-") as folder:
        uri = os.environ.get("MONGODB_URI")
        mongo = None
        if not uri:
            mongo = EmbeddedMongo(Path(folder) / "mongodb").start()
            uri = mongo.url
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "MONGODB_URI": uri,
            "WALLET_MONGODB_DATABASE": f"bench_wallet_{uuid.uuid4().hex[:8]}",
            "WALLET_GRPC_PORT": str(port),
            "WALLET_METRICS_PORT": "0",
            "LOG_LEVEL": "WARNING",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "services.wallet"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL
        )
        try:
            target = f"127.0.0.1:{port}"
            wait_ready(target, server)
            where = "embedded SecantusDB" if mongo else "MONGODB_URI"
            print(f"Wallet.Credit on {where}: {args.clients} clients, {args.users} accounts")
            print(f"{'batch':>6} {'entries/s':>10} {'calls/s':>9} {'p50 ms':>8} {'posted':>8}")
            for batch in batches:
                rate, p50, posted = asyncio.run(
                    run_batch_size(target, batch, args.clients, args.seconds, users)
                )
                print(f"{batch:>6} {rate:>10.0f} {rate / batch:>9.1f} {p50:>8.1f} {posted:>8}")
            check = subprocess.run(
                [sys.executable, "-m", "services.wallet", "reconcile"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            print(check.stdout.strip().splitlines()[-1] if check.stdout else check.stderr.strip())
            return check.returncode
        finally:
            server.terminate()
            server.wait(30)
            if mongo is not None:
                mongo.stop()


if __name__ == "__main__":
    raise SystemExit(main())
