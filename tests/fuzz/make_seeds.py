#!/usr/bin/python3
"""Write the seed corpora in corpus/<harness>/ (checked in; run again after
changing the wire schema). Messages are encoded by hand, field by field,
from proto/plexa.proto, so that seeds do not depend on a build."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def zig(n):
    return (n << 1) ^ (n >> 63)


def f_varint(num, v):
    return varint(num << 3) + varint(v)


def f_bytes(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def f_packed(num, values, signed=False):
    return f_bytes(num, b"".join(varint(zig(v) if signed else v) for v in values))


def env(body_num, body, mid=1, reply_to=None, targets=None):
    out = f_varint(1, mid)
    if reply_to is not None:
        out += f_varint(2, reply_to)
    if targets is not None:
        out += f_bytes(3, targets)
    return out + f_bytes(body_num, body)


ALL = f_varint(1, 1)
TWO = f_packed(2, [0, 1], signed=True)
I64 = f_varint(1, zig(7))                        # Value.i64
MAP_SPEC = f_bytes(1, b"map") + f_bytes(2, I64) + f_varint(7, zig(1))
# a chunk of 8 elements the controller may cut into pieces
LIST = f_bytes(6, f_bytes(1, I64) + f_bytes(1, I64))
CHUNK_SPEC = f_bytes(1, b"chunk") + f_bytes(2, I64) + f_bytes(2, LIST) + f_varint(11, 8)

DISPATCH = {   # (role index: 0 engine, 1 mec, 2 task, 3 status, nbufs, envelope)
    "get_ids": (1, 0, env(16, b"")),
    "execute": (1, 0, env(18, f_bytes(1, b"a = 1"), targets=ALL)),
    "execute_two": (1, 0, env(18, f_bytes(1, b"print(id)"), targets=TWO)),
    "push": (1, 1, env(21, f_bytes(1, f_bytes(1, b"a") + f_bytes(2, f_varint(4, 0))),
                       targets=ALL)),
    "pull": (1, 0, env(22, f_bytes(1, b"a"), targets=ALL)),
    "call": (1, 0, env(23, f_bytes(1, b"keys"), targets=ALL)),
    "clear_queue": (1, 0, env(24, b"", targets=ALL)),
    "queue_status": (1, 0, env(25, b"", targets=ALL)),
    "interrupt": (1, 0, env(37, b"", targets=ALL)),
    "kill": (1, 0, env(15, b"", targets=TWO)),
    "task_submit": (2, 0, env(27, f_bytes(1, MAP_SPEC) + f_bytes(1, MAP_SPEC))),
    "task_submit_after": (2, 0, env(27, f_bytes(1, MAP_SPEC + f_packed(9, [1, 2])))),
    "task_reserve": (2, 0, env(38, f_varint(1, 16))),
    "task_submit_chunk": (2, 0, env(27, f_bytes(1, CHUNK_SPEC))),
    "task_quiet": (2, 0, env(27, f_bytes(1, MAP_SPEC) + f_varint(2, 1) + f_varint(3, 1))),
    "task_wait": (2, 0, env(31, f_packed(1, [1, 2, 3]) + f_varint(2, 0))),
    "task_abort": (2, 0, env(33, f_packed(1, [1]))),
    "task_clear": (2, 0, env(34, b"")),
    "task_queue_status": (3, 0, env(35, f_varint(1, 1))),
    "engine_reply": (0, 0, env(19, f_bytes(3, b"execute"), reply_to=2)),
    "task_result": (0, 0, env(30, f_varint(1, 1) + f_varint(2, 1))),
    "task_started": (0, 0, env(39, f_varint(1, 1))),
    "task_stolen": (0, 0, env(41, f_packed(1, [1, 2]), reply_to=3)),
    "heartbeat": (0, 0, env(14, f_varint(1, 3))),
}

FRAME_HELLO = env(10, f_varint(1, 2) + f_bytes(2, b"ab" * 32) + f_varint(3, 2))


def frame(envelope, bufs=()):
    out = b"PLX1" + struct.pack("<II", len(envelope), len(bufs)) + envelope
    for b in bufs:
        out += struct.pack("<Q", len(b)) + b
    return out


FP = "ab" * 32
URLS = [
    "plx+tcp://127.0.0.1:5000/" + "0f" * 32,
    "plx+tls://head.example.org:443/" + "0f" * 32 + "#sha256=" + FP,
    "plx+tls://[::1]:6000/" + "a1" * 16 + "#sha256=" + FP.upper(),
    "plx+tcp://node1:1/" + "0" * 128,
]

CONF = """# cluster.conf
[cluster]
transport = tls
engines = 4
listen = 0.0.0.0
location = head.example.org
port = 5000
heartbeat_period = 0.5
restart_engines = true

[controller]
max_envelope = 16M
results_max_bytes = 1G
scheduler = leastload
token_lifetime = 3600
"""


def write(sub, name, data):
    d = os.path.join(HERE, "corpus", sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    for name, (role, nbufs, e) in DISPATCH.items():
        write("fuzz_dispatch", name, bytes([role, nbufs]) + e)
    write("fuzz_frame", "hello", b"\x0f\x00" + frame(FRAME_HELLO))
    write("fuzz_frame", "two_frames_direct", b"\x40\x01" + frame(FRAME_HELLO, [b"x" * 300])
          + frame(env(16, b"")))
    write("fuzz_frame", "bad_magic", b"\x03\x00" + b"\x16\x03\x01\x00" + b"\x00" * 8)
    for i, u in enumerate(URLS):
        write("fuzz_url", "url%d" % i, b"\x00" + u.encode())
        write("fuzz_url", "file%d" % i, b"\x01" + u.encode() + b"\n")
    # fuzz_preauth: byte 0 bit 0 = a valid Hello first (role in bits 1-2)
    wrong = env(10, f_varint(1, 2) + f_bytes(2, b"00" * 32) + f_varint(3, 2))
    write("fuzz_preauth", "wrong_token", b"\x00" + frame(wrong))
    write("fuzz_preauth", "gigabyte_announced", b"\x00" + b"PLX1"
          + struct.pack("<II", len(wrong), 1) + wrong + struct.pack("<Q", 1 << 30) + b"x" * 64)
    write("fuzz_preauth", "huge_envelope", b"\x00" + b"PLX1" + struct.pack("<II", 1 << 24, 0))
    write("fuzz_preauth", "after_mec_hello", b"\x03" + frame(env(16, b"")))
    write("fuzz_preauth", "after_status_hello", b"\x07" + frame(env(18, f_bytes(1, b"a = 1"))))
    write("fuzz_preauth", "after_engine_hello", b"\x01" + frame(env(39, f_varint(1, 5))))
    # fuzz_shm: step, descriptor kinds (2 bits each), how many; then frames
    # whose buffers are shared-memory references (offset, length)
    ref = lambda off, n: struct.pack("<QQQ", (1 << 63) | 16, off, n)
    one = b"PLX1" + struct.pack("<II", len(FRAME_HELLO), 1) + FRAME_HELLO
    write("fuzz_shm", "one_ref", b"\x20\x00\x01" + one + ref(4096, 1000))
    two = b"PLX1" + struct.pack("<II", 0, 2) + ref(0, 65536) + struct.pack("<Q", 3) + b"abc"
    write("fuzz_shm", "ref_and_inline", b"\x07\x00\x01" + two)
    write("fuzz_shm", "unsealed", b"\xff\x01\x01" + b"PLX1" + struct.pack("<II", 0, 1)
          + ref(0, 10))
    write("fuzz_shm", "too_short", b"\xff\x02\x01" + b"PLX1" + struct.pack("<II", 0, 1)
          + ref(0, 4096))
    write("fuzz_shm", "no_descriptor", b"\xff\x00\x00" + b"PLX1" + struct.pack("<II", 0, 1)
          + ref(0, 10))
    write("fuzz_conf", "full", CONF.encode())
    write("fuzz_conf", "errors", b"[cluster]\nengins = 2\n[nosuch]\nport = 99999\n")


if __name__ == "__main__":
    main()
