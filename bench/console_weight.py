"""`python -m bench.console_weight`: what a browser downloads to show each console page, gzip'd, and again.

Writes the executions of `bench.console_execution_pages` (5,002, 200 and 3 steps) into a fresh database, signs in
to the console in this process and, for each page, loads it as a browser with an empty cache would (the HTML,
then every stylesheet, script and image it names, with `Accept-Encoding: gzip`), counting the bytes on the wire
(compressed, headers left out). Then it counts a second load: the assets whose Cache-Control lets a browser keep
them are not fetched again. Prints a table and writes bench/results/console_weight.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from typing import Any

from flowline.settings import load_settings
from flowline_api.app import create_app
from litestar.testing import AsyncTestClient

from bench.console_execution_pages import load
from bench.stack import RESULTS, machine, private_stack

_ASSET = re.compile(r'<(?:link rel="stylesheet" href|script src|img src)="(/[^"]+)"')
GZIP = {"Accept-Encoding": "gzip"}


def pages(ids: dict[str, str]) -> list[tuple[str, str]]:
    return [
        ("sign in", "/ui/login"),
        ("executions", "/ui/executions"),
        ("execution, 3 steps", f"/ui/executions/{ids['small']}"),
        ("execution, 200 steps", f"/ui/executions/{ids['layered']}"),
        ("execution, 5,002 steps (fan-out folded)", f"/ui/executions/{ids['wide']}"),
        ("execution, 5,002 steps (summary)", f"/ui/executions/{ids['wide']}?expand=fetch"),
        ("workflows", "/ui/workflows"),
        ("workflow, 200 steps", "/ui/workflows/bench.layered"),
        ("schedules", "/ui/schedules"),
        ("webhooks", "/ui/webhooks"),
        ("agents", "/ui/agents"),
        ("audit log", "/ui/audit"),
    ]


def kept(cache_control: str) -> bool:
    """Whether a browser may reuse a response without asking again."""
    max_age = re.search(r"max-age=(\d+)", cache_control)
    return "no-store" not in cache_control and "no-cache" not in cache_control and bool(max_age and int(max_age[1]))


async def measure(env: dict[str, str], ids: dict[str, str]) -> list[dict[str, Any]]:
    results = []
    async with AsyncTestClient(create_app(load_settings(env)), base_url="http://bench.local", timeout=60) as client:
        await client.get("/ui/login")
        signed = await client.post(
            "/ui/login",
            data={"credential": env["FLOWLINE_API_KEY"], "_csrf_token": client.cookies["flowline_console_csrf"]},
        )
        signed.raise_for_status()
        for name, path in pages(ids):
            page = await client.get(path, headers=GZIP)
            page.raise_for_status()
            assets = {}
            for url in dict.fromkeys(_ASSET.findall(page.text)):
                asset = await client.get(url, headers=GZIP)
                asset.raise_for_status()
                assets[url] = {
                    "bytes": asset.num_bytes_downloaded,
                    "encoding": asset.headers.get("content-encoding", "none"),
                    "cache_control": asset.headers.get("cache-control", ""),
                }
            first = page.num_bytes_downloaded + sum(asset["bytes"] for asset in assets.values())
            again = page.num_bytes_downloaded + sum(a["bytes"] for a in assets.values() if not kept(a["cache_control"]))
            results.append(
                {
                    "page": name,
                    "path": path,
                    "html_bytes": len(page.content),
                    "html_gzip_bytes": page.num_bytes_downloaded,
                    "html_encoding": page.headers.get("content-encoding", "none"),
                    "first_load_bytes": first,
                    "second_load_bytes": again,
                    "assets": assets,
                }
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console_weight", description=__doc__)
    parser.parse_args()
    with private_stack(services=(), durable=False) as stack:
        ids = asyncio.run(load(stack.postgres.url))
        results = asyncio.run(measure(stack.env, ids))
    report = {"taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), "results": results}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "console_weight.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"| {'page':<42} | {'HTML':>9} | {'HTML gzip':>9} | {'first load':>10} | {'second load':>11} |")
    print(f"|{'-' * 44}|{'-' * 11}|{'-' * 11}|{'-' * 12}|{'-' * 13}|")
    for row in results:
        print(
            f"| {row['page']:<42} | {row['html_bytes']:>9,} | {row['html_gzip_bytes']:>9,} "
            f"| {row['first_load_bytes']:>10,} | {row['second_load_bytes']:>11,} |"
        )
    for url, asset in results[0]["assets"].items():
        print(f"{url}: {asset['bytes']:,} bytes ({asset['encoding']}), Cache-Control: {asset['cache_control']}")
    print(f"written to {RESULTS / 'console_weight.json'}")


if __name__ == "__main__":
    main()
