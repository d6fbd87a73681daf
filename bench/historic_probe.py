#!/usr/bin/env python3
"""A /health probe on one keep-alive connection while two clients download a historic
document without gzip back to back from the same server: the probe's latency shows what
inflating it costs the other connections on a serving thread.

Usage: bench/historic_probe.py HOST:PORT 'PATH?QUERY' [SECONDS]   (against a running server)
e.g.   bench/historic_probe.py 127.0.0.1:18480 \
           '/MedMij_Zorgaanbiederslijst.xml?release=2.0.0&volgnummer=2'
"""
import socket
import subprocess
import sys
import threading
import time

addr, target = sys.argv[1], sys.argv[2]
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
host, port = addr.rsplit(":", 1)
stop = False


def download():
    while not stop:
        subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://{addr}{target}"], check=False)


loaders = [threading.Thread(target=download) for _ in range(2)]
for t in loaders:
    t.start()
time.sleep(0.2)
probe = socket.create_connection((host, int(port)))
lat = []
end = time.time() + seconds
while time.time() < end:
    t0 = time.perf_counter()
    probe.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += probe.recv(65536)
    head, _, body = buf.partition(b"\r\n\r\n")
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n")
                  if l.lower().startswith(b"content-length"))
    while len(body) < length:
        body += probe.recv(65536)
    lat.append((time.perf_counter() - t0) * 1000)
stop = True
for t in loaders:
    t.join()
lat.sort()
pick = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))]
print(f"/health probes: {len(lat)} in {seconds:.0f} s; p50 {pick(0.5):.2f} ms, "
      f"p90 {pick(0.9):.2f} ms, p99 {pick(0.99):.2f} ms, max {lat[-1]:.2f} ms")
