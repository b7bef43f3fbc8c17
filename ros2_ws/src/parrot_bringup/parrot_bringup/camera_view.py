"""A live camera view in the browser: the newest frame as MJPEG over HTTP (stdlib only).

The teleop operator needs to see what the camera sees, on a machine that may have no display
libraries (opencv-python-headless has no windows): `teleop` with `view_port: 8090` serves
http://localhost:8090/ (the page), /stream (multipart MJPEG) and /frame.jpg (one frame).
Small model images are enlarged with nearest-neighbour so a person can see 48x48 pixels.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

PAGE = (b"<!doctype html><title>Parrot camera</title><body style='margin:0;background:#222'>"
        b"<img src='/stream' style='height:100vh;image-rendering:pixelated'></body>")
MIN_SIDE = 384  # px on screen for the shorter side


class CameraViewServer:
    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.jpeg: bytes | None = None
        self.frames = 0
        self.cond = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the operator's terminal clean
                pass

            def do_GET(self):
                if self.path == "/frame.jpg":
                    return self._frame()
                if self.path == "/stream":
                    return self._stream()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(PAGE)

            def _frame(self):
                jpeg = server.jpeg
                if jpeg is None:
                    self.send_error(503, "no camera frame yet")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(jpeg)))
                self.end_headers()
                self.wfile.write(jpeg)

            def _stream(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                seen = -1
                try:
                    while True:
                        with server.cond:
                            server.cond.wait_for(lambda: server.frames != seen, timeout=1.0)
                            jpeg, seen = server.jpeg, server.frames
                        if jpeg is None:
                            continue
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    return

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def update(self, rgb: np.ndarray) -> None:
        """Show this (H, W, 3) RGB frame from now on."""
        import cv2
        scale = max(1, int(np.ceil(MIN_SIDE / min(rgb.shape[:2]))))
        big = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1) if scale > 1 else rgb
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(big[:, :, ::-1]),
                               [cv2.IMWRITE_JPEG_QUALITY, 90])
        if ok:
            with self.cond:
                self.jpeg, self.frames = buf.tobytes(), self.frames + 1
                self.cond.notify_all()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
