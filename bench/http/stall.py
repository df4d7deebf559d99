"""bench/http/stall.py URL TOKEN PATH N: open N downloads of PATH through
nginx that read the response head and then nothing more (a client on a
stalled link), print how many were answered 200, and hold them open until
killed (SIGTERM). Used by bench/http/run.sh --stalled N."""
import signal
import socket
import sys
import time

url, token, path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
host, port = url.split("//")[1].split(":")
socks, ok = [], 0
for _ in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window: the sender soon blocks
    s.connect((host, int(port)))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    head = s.recv(64)
    ok += head.startswith(b"HTTP/1.1 200")
    socks.append(s)
print(f"{ok} of {n} stalled downloads answered 200", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(60)
