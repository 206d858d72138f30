"""A loopback TCP proxy for fault tests: accepts on 127.0.0.1:<port> (the
broker advertises it, so every client connection goes through it), opens one
connection to 127.0.0.1:<target> per client connection and hands the pair to
a subclass's serve(c, s), which pumps bytes as it likes (on its own
threads). close() stops accepting and closes every socket."""
import socket
import struct
import threading


def split_frames(buf):
    """The complete size-prefixed Kafka frames at the start of buf, and what
    is left after them (a partial frame, or b"")."""
    frames = []
    while len(buf) >= 4:
        n = 4 + struct.unpack(">i", buf[:4])[0]
        if n < 4:
            raise ValueError("negative frame size")
        if len(buf) < n:
            break
        frames.append(buf[:n])
        buf = buf[n:]
    return frames, buf


def frames_from(sock):
    """Yields, per recv, the list of complete frames it finished (maybe
    empty), until the peer closes; an OSError goes to the caller."""
    buf = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return
        frames, buf = split_frames(buf + data)
        yield frames


def close_quietly(x, how=socket.SHUT_RDWR):
    """shutdown (which wakes a thread blocked in recv on it) then close,
    ignoring a socket already gone."""
    try:
        x.shutdown(how)
    except OSError:
        pass
    try:
        x.close()
    except OSError:
        pass


class LoopbackProxy:
    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.target = None
        self.conns = 0
        self.lock = threading.Condition()
        self.stopping = False
        self.threads = []
        self.socks = set()
        self.spawn(self._accept)

    def spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                c.close()
                continue
            for x in (c, s):
                x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                x.settimeout(None)
            with self.lock:
                self.conns += 1
                self.socks.update((c, s))
            self.serve(c, s)

    def serve(self, c, s):
        raise NotImplementedError

    def close(self):
        self.stopping = True
        self.lsock.close()
        with self.lock:
            socks = list(self.socks)
        for x in socks:
            close_quietly(x)
