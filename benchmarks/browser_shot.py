"""Look at a Dagster UI page as a user would: open URL in headless Chromium (Debian's
`chromium`), run each JavaScript step (e.g. click the "Plots" toggle), screenshot.

    make demo && make ui   # in another shell, then:
    .venv/bin/python benchmarks/browser_shot.py \
        "http://127.0.0.1:3000/assets/bedrock_usage_daily?view=overview" plots.png \
        '[...document.querySelectorAll("button")].find(b => b.textContent == "Plots").click()'
"""

import asyncio
import base64
import json
import subprocess
import sys
import time
import urllib.request

import websockets


async def main(url, out, steps):
    proc = subprocess.Popen(
        [
            "chromium",
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1600,2200",
            "--remote-debugging-port=9333",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(50):
            try:
                tabs = json.load(urllib.request.urlopen("http://127.0.0.1:9333/json"))
                page = next(t for t in tabs if t["type"] == "page")
                break
            except Exception:
                time.sleep(0.2)
        async with websockets.connect(page["webSocketDebuggerUrl"], max_size=2**27) as ws:
            n = 0

            async def call(method, **params):
                nonlocal n
                n += 1
                await ws.send(json.dumps({"id": n, "method": method, "params": params}))
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("id") == n:
                        return msg.get("result", msg)

            await call("Page.enable")
            await call("Page.navigate", url=url)
            await asyncio.sleep(8)
            for step in steps:
                result = await call(
                    "Runtime.evaluate", expression=step, awaitPromise=True, returnByValue=True
                )
                print("step:", json.dumps(result.get("result", result))[:300])
                await asyncio.sleep(4)
            shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            with open(out, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
    finally:
        proc.terminate()


asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
