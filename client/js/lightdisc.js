// The key-light direction control: a shaded sphere seen from the camera with a draggable light point.
//
// A point (x, y) on the unit disc is the direction toward the light in camera coordinates (x right, y up,
// z toward the camera), z = sqrt(1 - x² - y²): the middle is a light beside the camera, the rim a side or
// top light. The sphere is shaded with that light so the operator sees the result of a drag at once.

const RIM_Z = 0.0;

export class LightDisc {
  /** `onChange(direction)` is called with a unit [x, y, z] while dragging (throttled by the caller). */
  constructor(canvas, onChange) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onChange = onChange;
    this.direction = [0, 0, 1];
    this.colour = [1, 1, 1];
    this.ambient = 0.35;
    this.dragging = false;
    canvas.addEventListener("pointerdown", (e) => this._start(e));
    canvas.addEventListener("pointermove", (e) => this._move(e));
    canvas.addEventListener("pointerup", (e) => this._end(e));
    canvas.addEventListener("pointercancel", (e) => this._end(e));
    canvas.tabIndex = 0;
    canvas.addEventListener("keydown", (e) => this._key(e));
    this.draw();
  }

  /** Show `direction` (from the server) unless the operator is dragging. */
  set(direction, colour, ambient) {
    if (this.dragging) return;
    if (Array.isArray(direction) && direction.length === 3) this.direction = normalise(direction);
    if (Array.isArray(colour) && colour.length === 3) this.colour = colour;
    if (typeof ambient === "number") this.ambient = ambient;
    this.draw();
  }

  _pointToDirection(event) {
    const rect = this.canvas.getBoundingClientRect();
    const r = rect.width / 2;
    let x = (event.clientX - rect.left - r) / r;
    let y = -(event.clientY - rect.top - r) / r;
    const d = Math.hypot(x, y);
    if (d > 1) {
      x /= d;
      y /= d;
    }
    const z = Math.max(RIM_Z, Math.sqrt(Math.max(0, 1 - x * x - y * y)));
    return normalise([x, y, z]);
  }

  _start(event) {
    this.dragging = true;
    this.canvas.setPointerCapture(event.pointerId);
    this._move(event);
  }

  _move(event) {
    if (!this.dragging) return;
    this.direction = this._pointToDirection(event);
    this.draw();
    this.onChange(this.direction);
  }

  _end(event) {
    if (!this.dragging) return;
    this._move(event);
    this.dragging = false;
  }

  _key(event) {
    const step = 0.08;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
    const m = moves[event.key];
    if (!m) return;
    event.preventDefault();
    let [x, y] = this.direction;
    x += m[0];
    y += m[1];
    const d = Math.hypot(x, y);
    if (d > 1) {
      x /= d;
      y /= d;
    }
    this.direction = normalise([x, y, Math.sqrt(Math.max(0, 1 - x * x - y * y))]);
    this.draw();
    this.onChange(this.direction);
  }

  draw() {
    const { canvas, ctx } = this;
    const size = canvas.width;
    const r = size / 2;
    const image = ctx.createImageData(size, size);
    const [lx, ly, lz] = this.direction;
    const [cr, cg, cb] = this.colour;
    for (let py = 0; py < size; py++) {
      for (let px = 0; px < size; px++) {
        const x = (px + 0.5 - r) / r;
        const y = -(py + 0.5 - r) / r;
        const rr = x * x + y * y;
        const i = (py * size + px) * 4;
        if (rr > 1) {
          image.data[i + 3] = 0;
          continue;
        }
        const z = Math.sqrt(1 - rr);
        const lambert = Math.max(0, x * lx + y * ly + z * lz);
        const v = Math.min(1, 0.12 * this.ambient + 0.8 * lambert);
        image.data[i] = 255 * v * (0.35 + 0.65 * cr);
        image.data[i + 1] = 255 * v * (0.35 + 0.65 * cg);
        image.data[i + 2] = 255 * v * (0.35 + 0.65 * cb);
        image.data[i + 3] = 255;
      }
    }
    ctx.putImageData(image, 0, 0);
    // the light: where the direction meets the sphere, as the camera sees it
    const hx = r + lx * r * 0.98;
    const hy = r - ly * r * 0.98;
    ctx.beginPath();
    ctx.arc(hx, hy, 7, 0, 2 * Math.PI);
    ctx.fillStyle = "#ffe9a8";
    ctx.fill();
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#0d0f12";
    ctx.stroke();
    ctx.beginPath();
    ctx.arc(r, r, r - 1, 0, 2 * Math.PI);
    ctx.strokeStyle = "#2a3038";
    ctx.lineWidth = 1;
    ctx.stroke();
  }
}

function normalise(v) {
  const n = Math.hypot(v[0], v[1], v[2]) || 1;
  return [v[0] / n, v[1] / n, v[2] / n];
}
