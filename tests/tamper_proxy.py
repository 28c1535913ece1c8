#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A TCP proxy between vmstream-send and vmstream-recv that damages the stream.

Used by tests/e2e_net.sh. It listens on 127.0.0.1 (port written to
--port-file), connects every accepted connection (one per lane) to --target,
and forwards both directions. Sender-to-receiver bytes are parsed:

  * the session setup of each lane is passed through untouched: TLS records
    (authenticated sessions; the raw phase starts at the first byte that does
    not begin a TLS record) or the unauthenticated HELLO frame
    (u32 length || message || u64 checksum, FORMAT.md section 9.1);
  * then lane 0 carries the preamble (its length is at offset 12) and every
    lane carries records: a 56-byte header (clear text even when encrypted:
    it is the AEAD's associated data) with seq at offset 8, lane at 32 and
    wire_len at 28, followed by wire_len payload bytes (FORMAT.md 2, 3).

Actions, applied once, to the record with sequence number --seq:

  flip    XOR one payload byte (the middle one, or --offset) with 0x01; with
          --in-header, a header byte instead
  drop    do not forward the record
  dup     forward the record twice (a replay)
  swap    forward record seq+lanes (the next one on the same lane) before it
  xswap   lanes >= 2: send record seq on the lane of record seq+1 and record
          seq+1 on the lane of record seq (both at the position of the other)
  none    forward everything (a plain proxy)

What it did is printed on stderr ("tamper_proxy: dropped record 5 on lane 1").
Sender-to-receiver bytes that cannot be forwarded any more (the receiver
refused and closed) are read and discarded, so the receiver's refusal, sent
back on lane 0, still reaches the sender.
"""
import argparse
import os
import socket
import struct
import sys
import threading

HDR = 56


def log(msg):
    sys.stderr.write("tamper_proxy: %s\n" % msg)
    sys.stderr.flush()


class Shared:
    """State shared by the lanes: the pending half of an xswap."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Condition()
        self.done = False
        self.held = {}        # seq -> (lane, bytes) for xswap
        self.outs = {}        # lane index -> upstream socket (for xswap)


class Lane(threading.Thread):
    def __init__(self, shared, down, up):
        super().__init__(daemon=True)
        self.s = shared
        self.down = down      # from the sender
        self.up = up          # to the receiver
        self.buf = bytearray()
        self.eof = False
        self.dead_up = False
        self.lane = None
        self.held = None      # swap: record held back (bytes)

    # ---- input -------------------------------------------------------
    def fill(self, n):
        """Have at least n bytes buffered (False at EOF)."""
        while len(self.buf) < n:
            if self.eof:
                return False
            try:
                d = self.down.recv(1 << 20)
            except OSError:
                d = b""
            if not d:
                self.eof = True
                return len(self.buf) >= n
            self.buf += d
        return True

    def take(self, n):
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    # ---- output ------------------------------------------------------
    def send(self, data, sock=None):
        sock = sock or self.up
        if self.dead_up and sock is self.up:
            return
        try:
            sock.sendall(data)
        except OSError:
            if sock is self.up:
                self.dead_up = True

    # ---- phases ------------------------------------------------------
    def setup_phase(self):
        if not self.fill(12):
            return False
        if self.buf[0] in (0x14, 0x15, 0x16, 0x17) and self.buf[1] == 0x03:
            # TLS records until the first byte that does not start one.
            while True:
                if not self.fill(1):
                    return False
                if not (self.buf[0] in (0x14, 0x15, 0x16, 0x17)):
                    return True
                if not self.fill(5):
                    return False
                n = struct.unpack(">H", bytes(self.buf[3:5]))[0]
                if not self.fill(5 + n):
                    return False
                self.send(self.take(5 + n))
        if bytes(self.buf[4:12]) == b"VMSHELO1":
            n = struct.unpack("<I", bytes(self.buf[0:4]))[0]
            if not self.fill(4 + n + 8):
                return False
            self.send(self.take(4 + n + 8))
            return True
        log("unexpected session setup bytes %r; passing through" % bytes(self.buf[:12]))
        return False

    def record(self):
        """Next whole record (header + payload) or None at EOF."""
        if not self.fill(HDR):
            return None
        wire = struct.unpack("<I", bytes(self.buf[28:32]))[0]
        if not self.fill(HDR + wire):
            return None
        return self.take(HDR + wire)

    def run(self):
        try:
            self.pump()
        finally:
            # Forward what is left, then end the upstream direction.
            while True:
                if self.buf:
                    self.send(self.take(len(self.buf)))
                if self.eof or not self.fill(len(self.buf) + 1):
                    break
            try:
                self.up.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def pump(self):
        a = self.s.args
        if not self.setup_phase():
            return
        if not self.fill(16):
            return
        if bytes(self.buf[0:4]) == b"\x8aVMS":
            plen = struct.unpack("<I", bytes(self.buf[12:16]))[0]
            if not self.fill(plen):
                return
            self.send(self.take(plen))
        while True:
            rec = self.record()
            if rec is None:
                return
            seq = struct.unpack("<Q", rec[8:16])[0]
            lane = struct.unpack("<H", rec[32:34])[0]
            if self.lane is None:
                self.lane = lane
                with self.s.lock:
                    self.s.outs[lane] = self.up
                    self.s.lock.notify_all()
            self.handle(rec, seq, lane, a)

    def handle(self, rec, seq, lane, a):
        s = self.s
        act = a.action
        if act == "none" or s.done and act != "swap" and act != "xswap":
            self.send(rec)
            return
        if act == "flip" and seq == a.seq:
            b = bytearray(rec)
            wire = len(rec) - HDR
            if a.in_header or wire == 0:
                i = a.offset if a.offset is not None else 20
            else:
                i = HDR + (a.offset if a.offset is not None else wire // 2)
            b[i] ^= 0x01
            s.done = True
            log("flipped byte %d of record %d on lane %d" % (i, seq, lane))
            self.send(bytes(b))
            return
        if act == "drop" and seq == a.seq:
            s.done = True
            log("dropped record %d on lane %d" % (seq, lane))
            return
        if act == "dup" and seq == a.seq:
            s.done = True
            log("replayed record %d on lane %d" % (seq, lane))
            self.send(rec)
            self.send(rec)
            return
        if act == "swap":
            if seq == a.seq and self.held is None and not s.done:
                self.held = rec
                return
            if self.held is not None:
                self.send(rec)
                self.send(self.held)
                log("swapped records %d and %d on lane %d" % (
                    struct.unpack("<Q", self.held[8:16])[0], seq, lane))
                self.held = None
                s.done = True
                return
            self.send(rec)
            return
        if act == "xswap" and seq in (a.seq, a.seq + 1) and not s.done:
            with s.lock:
                s.held[seq] = (lane, rec)
                s.lock.notify_all()
                other = a.seq + 1 if seq == a.seq else a.seq
                # Wait for the partner record on the other lane (the
                # sender keeps every lane busy, so it arrives).
                ok = s.lock.wait_for(lambda: other in s.held or s.done, timeout=10)
                if not ok or s.done and other not in s.held:
                    log("xswap: record %d never arrived; forwarding %d" % (other, seq))
                    s.done = True
                    self.send(rec)
                    return
                olane, orec = s.held[other]
                s.done = True
            # This lane sends the partner's record in place of its own.
            log("moved record %d from lane %d to lane %d" % (
                struct.unpack("<Q", orec[8:16])[0], olane, lane))
            self.send(orec)
            return
        self.send(rec)


def back(down, up):
    """Receiver-to-sender direction: plain copy."""
    try:
        while True:
            try:
                d = up.recv(1 << 16)
            except OSError:
                d = b""
            if not d:
                break
            try:
                down.sendall(d)
            except OSError:
                break
    finally:
        try:
            down.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", required=True, help="HOST:PORT of vmstream-recv")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--action", default="none",
                    choices=["none", "flip", "drop", "dup", "swap", "xswap"])
    ap.add_argument("--seq", type=int, default=5, help="sequence number of the record")
    ap.add_argument("--offset", type=int, default=None)
    ap.add_argument("--in-header", action="store_true")
    args = ap.parse_args()

    host, port = args.target.rsplit(":", 1)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(128)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(tmp, args.port_file)

    shared = Shared(args)
    threads = []
    while True:
        down, _ = ls.accept()
        up = socket.create_connection((host.strip("[]"), int(port)))
        for s in (down, up):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = Lane(shared, down, up)
        t.start()
        b = threading.Thread(target=back, args=(down, up), daemon=True)
        b.start()
        threads += [t, b]


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
