# cdp.py: a headless Chromium driven over the DevTools protocol, with nothing but the
# Python standard library: a small RFC 6455 websocket client (client frames masked,
# fragmented server messages joined) and the few CDP calls the dashboard tests need
# (navigate, evaluate JavaScript, capture a screenshot).
#
#   b = Browser()                      # starts "chromium --headless --no-sandbox"
#   p = b.new_page()
#   p.goto("http://127.0.0.1:8080/")
#   p.js("document.title")             # the value of an expression
#   p.wait_for("document.querySelector('#x') !== null", timeout=20)
#   p.screenshot("/tmp/page.png")
#   b.close()
import base64
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request


class WebSocket:
    def __init__(self, url, timeout=30):
        u = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path + ('?' + u.query if u.query else '')
        req = (f"GET {path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        head = b''
        while b'\r\n\r\n' not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError('websocket handshake: connection closed')
            head += chunk
        head, self.buf = head.split(b'\r\n\r\n', 1)
        if b' 101 ' not in head.split(b'\r\n')[0]:
            raise ConnectionError('websocket handshake refused: ' + head.decode(errors='replace'))
        accept = base64.b64encode(hashlib.sha1(
            (key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').encode()).digest()).decode()
        if accept.encode() not in head:
            raise ConnectionError('websocket handshake: bad Sec-WebSocket-Accept')

    def send(self, text):
        data = text.encode()
        n = len(data)
        if n < 126:
            hdr = struct.pack('!BB', 0x81, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack('!BBH', 0x81, 0x80 | 126, n)
        else:
            hdr = struct.pack('!BBQ', 0x81, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(hdr + mask + masked)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError('websocket closed')
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """One whole message (text), continuation frames joined; pings answered."""
        parts = []
        while True:
            b0, b1 = self._read(2)
            fin, op = b0 & 0x80, b0 & 0x0f
            n = b1 & 0x7f
            if n == 126:
                n = struct.unpack('!H', self._read(2))[0]
            elif n == 127:
                n = struct.unpack('!Q', self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if op == 0x8:
                raise ConnectionError('websocket closed by the browser')
            if op == 0x9:                       # ping -> pong
                self.sock.sendall(struct.pack('!BB', 0x8a, 0x80 | len(payload)) + b'\0\0\0\0' + payload)
                continue
            if op in (0x1, 0x2, 0x0):
                parts.append(payload)
                if fin:
                    return b''.join(parts).decode()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Page:
    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.call('Page.enable')
        self.call('Runtime.enable')

    def call(self, method, **params):
        self.next_id += 1
        my = self.next_id
        self.ws.send(json.dumps({'id': my, 'method': method, 'params': params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == my:
                if 'error' in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get('result', {})

    def js(self, expr):
        r = self.call('Runtime.evaluate', expression=expr, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails'].get('text')} "
                               f"{r['exceptionDetails'].get('exception', {}).get('description', '')}")
        return r['result'].get('value')

    def wait_for(self, expr, timeout=20.0):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                last = self.js(expr)
                if last:
                    return last
            except RuntimeError:
                pass
            time.sleep(0.2)
        return last

    def goto(self, url, ready=None, timeout=20.0):
        """Navigate and wait until the new document is loaded (and, if given, ready is true)."""
        self.js("window.__cdp_old_doc = true")
        self.call('Page.navigate', url=url)
        self.wait_for("!window.__cdp_old_doc && document.readyState === 'complete'", timeout)
        if ready:
            self.wait_for(ready, timeout)

    def submit_and_wait(self, click_expr, timeout=20.0):
        """Click something that submits a form, wait for the next document to load."""
        self.js("window.__cdp_old_doc = true")
        self.js(click_expr)
        self.wait_for("!window.__cdp_old_doc && document.readyState === 'complete'", timeout)

    def screenshot(self, path, width=1200, height=800):
        self.call('Page.bringToFront')      # a background tab draws no frame to capture
        self.call('Emulation.setDeviceMetricsOverride', width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        r = self.call('Page.captureScreenshot', format='png')
        with open(path, 'wb') as f:
            f.write(base64.b64decode(r['data']))

    def close(self):
        self.ws.close()


class Browser:
    def __init__(self, binary=None):
        self.dir = tempfile.mkdtemp(prefix='cdp-')
        binary = binary or shutil.which('chromium') or '/usr/bin/chromium'
        self.proc = subprocess.Popen(
            [binary, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
             '--no-default-browser-check', '--disable-extensions', '--disable-dev-shm-usage',
             '--remote-debugging-port=0', '--remote-allow-origins=*',
             f'--user-data-dir={self.dir}/profile', 'about:blank'],
            stdout=subprocess.DEVNULL, stderr=open(f'{self.dir}/chromium.log', 'wb'),
            env=dict(os.environ, HOME=self.dir))
        port = None
        deadline = time.time() + 60
        # chromium writes the port it took into DevToolsActivePort in its profile
        while time.time() < deadline and port is None:
            try:
                with open(f'{self.dir}/profile/DevToolsActivePort') as f:
                    port = int(f.readline().strip())
            except (OSError, ValueError):
                if self.proc.poll() is not None:
                    with open(f'{self.dir}/chromium.log', errors='replace') as f:
                        raise RuntimeError('chromium exited: ' + f.read()[-2000:])
                time.sleep(0.2)
        if port is None:
            raise RuntimeError('chromium did not open its DevTools port')
        self.base = f'http://127.0.0.1:{port}'

    def new_page(self):
        req = urllib.request.Request(self.base + '/json/new?about:blank', method='PUT')
        with urllib.request.urlopen(req, timeout=30) as r:
            target = json.loads(r.read())
        return Page(target['webSocketDebuggerUrl'])

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
