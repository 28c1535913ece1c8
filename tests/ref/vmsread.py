#!/usr/bin/python3
"""Independent reader of the vmstream stream format (FORMAT.md, version 1.0).

Written from FORMAT.md alone (no libvmstream code).  Reads one stream file,
applies the reader rules of FORMAT.md section 4 in order, and prints one line:
  OK
  ERR <VMS_NAME> preamble at byte 0
  ERR <VMS_NAME> record <n> at byte <offset>
Exit status: 0 for OK, 1 for a stream error, 2 for a usage error.
"""
import hashlib
import hmac
import struct
import sys

import xxhash
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.exceptions import InvalidTag

ERR = {
    -4: "VMS_ETRUNCATED", -5: "VMS_EMAGIC", -6: "VMS_EVERSION", -7: "VMS_EPREAMBLE",
    -8: "VMS_EHDRSUM", -9: "VMS_EPAYLOADSUM", -10: "VMS_ELENGTH", -11: "VMS_ESEQ",
    -12: "VMS_EOFFSET", -13: "VMS_ERECTYPE", -14: "VMS_EDEVICE", -15: "VMS_EDIGEST",
    -16: "VMS_EEOS", -17: "VMS_ETRAILING", -18: "VMS_ECODEC", -19: "VMS_EDECOMPRESS",
    -20: "VMS_EAUTH", -21: "VMS_EKEY", -22: "VMS_EPEERABORT", -25: "VMS_EFLAGS",
    -28: "VMS_EUNSUPPORTED", -33: "VMS_EEPOCH", -34: "VMS_ERESERVED", -37: "VMS_EPHASE",
}
ETRUNCATED, EMAGIC, EVERSION, EPREAMBLE = -4, -5, -6, -7
EHDRSUM, EPAYLOADSUM, ELENGTH, ESEQ, EOFFSET = -8, -9, -10, -11, -12
ERECTYPE, EDEVICE, EDIGEST, EEOS, ETRAILING = -13, -14, -15, -16, -17
ECODEC, EDECOMPRESS, EAUTH, EKEY, EPEERABORT = -18, -19, -20, -21, -22
EFLAGS, EEPOCH, ERESERVED, EPHASE = -25, -33, -34, -37

MAGIC = bytes([0x8A, 0x56, 0x4D, 0x53, 0x0D, 0x0A, 0x1A, 0x0A])
MAX_CHUNK = 16777216          # rule 11: this reader accepts the format's maximum
DEFINED_CODECS = {"zstd": 1}  # section 2.1
IMPLEMENTED = {"zstd"}
T_BEGIN, T_DATA, T_ZERO, T_PHASE, T_END, T_EOS, T_ABORT = 1, 2, 3, 4, 5, 6, 7
KNOWN_TYPES = {1, 2, 3, 4, 5, 6, 7}
STREAM_DEV = 0xFFFFFFFF
NAME_CHARS = set(b"abcdefghijklmnopqrstuvwxyz0123456789._-")


class VmsError(Exception):
    def __init__(self, code, where):
        super().__init__(code, where)
        self.code = code
        self.where = where


def xxh3(b):
    return xxhash.xxh3_64_intdigest(b)


def parse_key_file(path):
    """Section 5: exactly 64 hex digits, optionally one LF, nothing else."""
    try:
        with open(path, "rb") as f:
            data = f.read(200)
    except OSError:
        return None
    if data.endswith(b"\n"):
        data = data[:-1]
    if len(data) != 64 or any(c not in b"0123456789abcdefABCDEF" for c in data):
        return None
    return bytes.fromhex(data.decode("ascii"))


def hkdf_extract(salt, ikm):
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand32(prk, info):
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


# ---------------------------------------------------------------- zstd (2.1)
def zstd_decode(body, raw_len):
    """Returns the decoded bytes, or None if the body breaks section 2.1's rules."""
    n = len(body)
    if n < 5 or body[:4] != b"\x28\xb5\x2f\xfd":
        return None
    fhd = body[4]
    fcs_flag = fhd >> 6
    single = (fhd >> 5) & 1
    reserved = (fhd >> 3) & 1
    checksum = (fhd >> 2) & 1
    did_flag = fhd & 3
    if reserved:
        return None                      # RFC 8878: reserved bit must be 0
    p = 5
    if not single:
        p += 1                           # Window_Descriptor
    did_size = (0, 1, 2, 4)[did_flag]
    if p + did_size > n:
        return None
    did = int.from_bytes(body[p:p + did_size], "little") if did_size else 0
    p += did_size
    if did != 0:
        return None
    fcs_size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if fcs_size == 0:
        return None                      # content size required
    if p + fcs_size > n:
        return None
    fcs = int.from_bytes(body[p:p + fcs_size], "little")
    if fcs_size == 2:
        fcs += 256
    p += fcs_size
    if fcs != raw_len:
        return None
    # walk the blocks so that the frame must end exactly at the end of the body
    while True:
        if p + 3 > n:
            return None
        bh = int.from_bytes(body[p:p + 3], "little")
        p += 3
        last = bh & 1
        btype = (bh >> 1) & 3
        bsize = bh >> 3
        if btype == 3:
            return None
        p += 1 if btype == 1 else bsize
        if p > n:
            return None
        if last:
            break
    if checksum:
        p += 4
    if p != n:
        return None
    try:
        out = zstandard.ZstdDecompressor().decompress(body, max_output_size=raw_len)
    except zstandard.ZstdError:
        return None
    if len(out) != raw_len:
        return None
    if checksum:
        want = int.from_bytes(body[n - 4:], "little")
        if (xxhash.xxh64_intdigest(out) & 0xFFFFFFFF) != want:
            return None
    return out


# ---------------------------------------------------------------- preamble (4.1)
def read_preamble(buf, key):
    P = "preamble at byte 0"

    def fail(code):
        raise VmsError(code, P)

    if len(buf) < 8:
        fail(ETRUNCATED)                                    # 1
    if buf[:8] != MAGIC:
        fail(EMAGIC)                                        # 2
    if len(buf) < 16:
        fail(ETRUNCATED)                                    # 3
    vmaj, vmin, plen = struct.unpack_from("<HHI", buf, 8)
    if vmaj != 1:
        fail(EVERSION)                                      # 4
    if not 56 <= plen <= 4096:
        fail(EPREAMBLE)                                     # 5
    if len(buf) < plen:
        fail(ETRUNCATED)                                    # 6
    if xxh3(buf[:plen - 8]) != struct.unpack_from("<Q", buf, plen - 8)[0]:
        fail(EPREAMBLE)                                     # 7
    stream_id = buf[16:32]
    flags, chunk_cap, cipher, key_source, lanes, reserved = struct.unpack_from("<IIBBHI", buf, 32)
    if flags & ~1:
        fail(EFLAGS)                                        # 8
    if reserved != 0:
        fail(ERESERVED)                                     # 9
    if not 4096 <= chunk_cap <= 16777216:
        fail(ELENGTH)                                       # 10
    if chunk_cap > MAX_CHUNK:
        fail(ELENGTH)                                       # 11
    if cipher > 2:
        fail(EPREAMBLE)                                     # 12
    if key_source > 2:
        fail(EPREAMBLE)                                     # 13
    if (cipher == 0) != (key_source == 0):
        fail(EPREAMBLE)                                     # 14
    if bool(flags & 1) != (cipher != 0):
        fail(EPREAMBLE)                                     # 15
    if not 1 <= lanes <= 64:
        fail(EPREAMBLE)                                     # 16
    # 17: parameter entries
    p, end = 48, plen - 8
    seen = set()
    codecs = []          # (id, name) in declaration order
    salt = None
    while p < end:
        if end - p < 4:
            fail(EPREAMBLE)
        ptype, plen_v = struct.unpack_from("<HH", buf, p)
        if plen_v > end - p - 4:
            fail(EPREAMBLE)
        val = buf[p + 4:p + 4 + plen_v]
        p += 4 + plen_v
        if ptype != 0x0001:
            if ptype in seen:
                fail(EPREAMBLE)
            seen.add(ptype)
        if ptype == 0x0001:                                 # CODEC
            if not 2 <= plen_v <= 33:
                fail(EPREAMBLE)
            cid, name = val[0], val[1:]
            if cid == 0 or cid == 255:
                fail(EPREAMBLE)
            if any(c not in NAME_CHARS for c in name):
                fail(EPREAMBLE)
            if any(cid == c[0] or name == c[1] for c in codecs):
                fail(EPREAMBLE)
            codecs.append((cid, name))
            if len(codecs) > 16:
                fail(EPREAMBLE)
        elif ptype == 0x0002:                               # SALT
            if plen_v != 32:
                fail(EPREAMBLE)
            salt = val
        elif ptype == 0x8001:                               # SIZE_HINT
            if plen_v != 8:
                fail(EPREAMBLE)
        elif ptype == 0x8002:                               # CREATOR
            pass
        elif not ptype & 0x8000:
            fail(EPREAMBLE)                                 # unknown critical
    # 18
    if (key_source != 0) != (salt is not None):
        fail(EPREAMBLE)
    # 19: codec declarations
    for cid, name in codecs:
        sname = name.decode("ascii")
        if sname not in IMPLEMENTED:
            fail(ECODEC)
        if sname in DEFINED_CODECS and DEFINED_CODECS[sname] != cid:
            fail(ECODEC)
        if sname not in DEFINED_CODECS and cid < 64:
            fail(ECODEC)
    # 20: a file is one lane
    if lanes != 1:
        fail(EPREAMBLE)
    # 21: the key
    prk = None
    if cipher == 0:
        if key is not None:
            fail(EKEY)
    else:
        if key_source != 1 or key is None or key is False:
            fail(EKEY)             # also a malformed key file (key is False)
        prk = hkdf_extract(salt, key)
    # 22: no memory limit in this reader
    psum = buf[plen - 8:plen]
    return dict(plen=plen, stream_id=stream_id, chunk_cap=chunk_cap, cipher=cipher,
                lanes=lanes, encrypted=cipher != 0, codecs={c[0]: c[1] for c in codecs},
                prk=prk, psum=psum)


# ---------------------------------------------------------------- records (4.2)
def read_records(buf, pre):
    pos = pre["plen"]
    nrec = 0
    enc = pre["encrypted"]
    chunk_cap = pre["chunk_cap"]
    prev_epoch = None
    ndev = 0
    dev_bytes = []        # bytes so far per device
    dev_hash = []         # running XXH3 per device
    dev_ended = []
    raw_total = 0
    keys = {}
    zero_block = bytes(65536)

    while True:
        where = "record %d at byte %d" % (nrec, pos)

        def fail(code):
            raise VmsError(code, where)

        left = len(buf) - pos
        if left < 56:
            fail(ETRUNCATED)                                # 1
        hdr = buf[pos:pos + 56]
        (rtype, rflags, codec, res3, device, seq, offset, raw_len, wire_len, lane, epoch,
         res36, payload_sum, header_sum) = struct.unpack("<BBBBIQQIIHHIQQ", hdr)
        if xxh3(hdr[:48]) != header_sum:
            fail(EHDRSUM)                                   # 2
        if res3 != 0 or res36 != 0:
            fail(ERESERVED)                                 # 3
        if rflags & 0xFE:
            fail(EFLAGS)                                    # 4
        if bool(rflags & 1) != enc:
            fail(EFLAGS)                                    # 5
        if seq != nrec:
            fail(ESEQ)                                      # 6
        if lane >= pre["lanes"]:
            fail(EEPOCH)                                    # 7
        if not enc:                                         # 8
            if epoch != 0:
                fail(EEPOCH)
        elif prev_epoch is None:
            if epoch != 0:
                fail(EEPOCH)
        elif epoch != prev_epoch and epoch != prev_epoch + 1:
            fail(EEPOCH)
        known = rtype in KNOWN_TYPES
        if not known and not rtype & 0x80:
            fail(ERECTYPE)                                  # 9
        is_ctrl = rtype not in (T_DATA, T_ZERO)
        stream_level = rtype in (T_PHASE, T_EOS, T_ABORT) or not known
        # 10: lengths
        if enc:
            if wire_len < 24:
                fail(ELENGTH)
            body_len = wire_len - 24
        else:
            body_len = wire_len
        if rtype in (T_DATA, T_ZERO) and (raw_len == 0 or raw_len > chunk_cap):
            fail(ELENGTH)
        if rtype == T_DATA:
            if codec == 0 and body_len != raw_len:
                fail(ELENGTH)
            if codec != 0 and (body_len == 0 or body_len >= raw_len):
                fail(ELENGTH)
        elif rtype == T_ZERO:
            if body_len != 0:
                fail(ELENGTH)
        else:
            if raw_len > 4096 or body_len != raw_len:
                fail(ELENGTH)
        if enc and payload_sum != 0:
            fail(ERESERVED)                                 # 11
        # 12: codec
        if codec != 0 and (rtype != T_DATA or codec not in pre["codecs"]):
            fail(ECODEC)
        # 13: devices
        if rtype == T_BEGIN:
            if device != ndev or ndev >= 65536:
                fail(EDEVICE)
        elif rtype in (T_DATA, T_ZERO, T_END):
            if device >= ndev or dev_ended[device]:
                fail(EDEVICE)
        elif stream_level and device != STREAM_DEV:
            fail(EDEVICE)
        # 14: offsets
        if rtype in (T_DATA, T_ZERO):
            if offset != dev_bytes[device] or offset + raw_len > 0xFFFFFFFFFFFFFFFF:
                fail(EOFFSET)
        elif offset != 0:
            fail(EOFFSET)
        # 15
        if left - 56 < wire_len:
            fail(ETRUNCATED)
        payload = buf[pos + 56:pos + 56 + wire_len]
        # 16: authentication
        if enc:
            k = keys.get((lane, epoch))
            if k is None:
                info = (b"vmstream v1 key" + pre["stream_id"] + pre["psum"] +
                        struct.pack("<BHH", pre["cipher"], lane, epoch))
                k = hkdf_expand32(pre["prk"], info)
                keys[(lane, epoch)] = k
            nonce = struct.pack("<HHQ", lane, epoch, seq)
            aead = AESGCM(k) if pre["cipher"] == 1 else ChaCha20Poly1305(k)
            try:
                plain = aead.decrypt(nonce, payload, hdr)
            except InvalidTag:
                fail(EAUTH)
            body = plain[:body_len]
            sum_val = struct.unpack_from("<Q", plain, body_len)[0]
        else:
            body = payload
            sum_val = payload_sum
        # 17: decode
        if rtype == T_DATA and codec != 0:
            decoded = zstd_decode(body, raw_len)  # only zstd can be declared (rule 19)
            if decoded is None:
                fail(EDECOMPRESS)
        else:
            decoded = body
        # 18: payload sum
        if rtype == T_ZERO:
            if sum_val != 0:
                fail(EPAYLOADSUM)
        elif xxh3(decoded) != sum_val:
            fail(EPAYLOADSUM)
        # 19: control record bodies
        if rtype == T_BEGIN:
            if len(body) < 18:
                fail(ELENGTH)
            kind, res, hint, name_len = struct.unpack_from("<IIQH", body, 0)
            if res != 0:
                fail(ERESERVED)
            if name_len == 0 or name_len > 255 or name_len != len(body) - 18:
                fail(ELENGTH)
            if b"\x00" in body[18:]:
                fail(EDEVICE)
        elif rtype == T_PHASE:
            if len(body) != 8:
                fail(ELENGTH)
            phase = struct.unpack_from("<I", body, 0)[0]
            if phase not in (1, 2, 3):
                fail(EPHASE)
        elif rtype == T_END:
            if len(body) != 16:
                fail(ELENGTH)
            total, digest = struct.unpack("<QQ", body)
            # 20
            if total != dev_bytes[device] or digest != dev_hash[device].intdigest():
                fail(EDIGEST)
        elif rtype == T_EOS:
            if len(body) != 24:
                fail(ELENGTH)
            e_records, e_raw, e_devs, e_res = struct.unpack("<QQII", body)
            if e_res != 0:
                fail(ERESERVED)
            # 21
            if any(not e for e in dev_ended) or e_records != seq or e_raw != raw_total \
                    or e_devs != ndev:
                fail(EEOS)
        elif rtype == T_ABORT:
            if len(body) < 6:
                fail(ELENGTH)
            code, text_len = struct.unpack_from("<IH", body, 0)
            if text_len > 1024 or text_len != len(body) - 6:
                fail(ELENGTH)
        # the record passed: apply it
        if rtype == T_BEGIN:
            ndev += 1
            dev_bytes.append(0)
            dev_hash.append(xxhash.xxh3_64())
            dev_ended.append(False)
        elif rtype == T_DATA:
            dev_bytes[device] += raw_len
            dev_hash[device].update(decoded)
            raw_total += raw_len
        elif rtype == T_ZERO:
            dev_bytes[device] += raw_len
            n = raw_len
            while n:
                c = min(n, len(zero_block))
                dev_hash[device].update(zero_block[:c])
                n -= c
            raw_total += raw_len
        elif rtype == T_END:
            dev_ended[device] = True
        prev_epoch = epoch
        pos += 56 + wire_len
        nrec += 1
        if rtype == T_ABORT:
            raise VmsError(EPEERABORT, where)               # 23
        if rtype == T_EOS:
            if pos != len(buf):                             # 22
                raise VmsError(ETRAILING, "record %d at byte %d" % (nrec, pos))
            return


def read_stream(path, keyfile=None):
    key = None
    if keyfile is not None:
        key = parse_key_file(keyfile)
        if key is None:
            key = False   # malformed key: VMS_EKEY at preamble rule 21
    with open(path, "rb") as f:
        buf = f.read()
    try:
        pre = read_preamble(buf, key)
        read_records(buf, pre)
    except VmsError as e:
        return "ERR %s %s" % (ERR.get(e.code, str(e.code)), e.where)
    return "OK"


def main(argv):
    args = argv[1:]
    keyfile = None
    if len(args) >= 2 and args[0] == "--key":
        keyfile = args[1]
        args = args[2:]
    elif args and args[0].startswith("--key="):
        keyfile = args[0][6:]
        args = args[1:]
    if len(args) != 1:
        sys.stderr.write("usage: vmsread.py [--key HEXFILE] STREAM\n")
        return 2
    line = read_stream(args[0], keyfile)
    print(line)
    return 0 if line == "OK" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
