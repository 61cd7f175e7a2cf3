#!/usr/bin/env node
// face-api oracle: runs the real @vladmandic/face-api 1.7.15 nets under Node on the pure-JS
// CPU backend of TFJS 4.22 (no native code, no network) and writes their outputs as raw
// little-endian float32 files. mien's coded face-api architectures (src/nn/faceapi.c) are
// tested against what this writes (tools/make_goldens_faceapi.sh, tests/golden/faceapi_*).
//
//   node tools/faceapi_oracle.js --net recognition --models models/faceapi \
//        (--input in.f32 | --synth SEED) --out /tmp/rec
//
// --net recognition      FaceRecognitionNet: input 150x150, writes OUT.0.f32 = (1,128)
// --net landmarks68      FaceLandmark68Net: input 112x112, writes OUT.0.f32 = runNet (1,136)
// --net landmarks68tiny  FaceLandmark68TinyNet: same
// --net expression       FaceExpressionNet: input 112x112, writes OUT.0.f32 = forwardInput (1,7)
//                          (softmax probabilities)
// --net agegender        AgeGenderNet: input 112x112, writes OUT.0.f32 = age (1), OUT.1.f32 =
//                          gender probabilities (1,2), male first (forwardInput)
// --net ssd              SsdMobilenetv1: input 512x512, writes
//                          OUT.0.f32 raw box encodings (1,5118,4)
//                          OUT.1.f32 raw class logits (1,5118,3)
//                          OUT.2.f32 decoded boxes (5118,4) [ymin,xmin,ymax,xmax] in [0,1]
//                          OUT.3.f32 scores (5118) = sigmoid(logit of class 1)
//                          OUT.4.f32 locateFaces() with --min-confidence (default 0.5) and
//                            maxResults 100: (n,5) score, x, y, width, height in pixels of
//                            the input image; the same in OUT.dets.json
// The input (--input: raw float32, HWC, RGB 0..255 of the net's input size or of --size W,H;
// --synth: the synthetic face picture of synthImage() below, which tests/test_faceapi.c
// computes the same way) is given to face-api as a tf.Tensor4D, so face-api's own
// preprocessing runs: toBatchTensor pads to a square and resizes bilinearly (the identity at
// the net's input size), then the mean subtraction and scaling of each net.
//
// face-api's node builds require tfjs-node (native) or @tensorflow/tfjs + tfjs-backend-wasm; the
// wasm build is loaded here with the wasm backend resolved to an empty stub (it is never used)
// and every computation on the pure-JS CPU backend.
'use strict';
const fs = require('fs');
const path = require('path');
const Module = require('module');

const tf = require('@tensorflow/tfjs');

// The raw SSD predictions exist only inside face-api's forwardInput: they are the two
// tf.concat(..., 1) of predictionLayer(). face-api reads tf.* through getters on the module
// object given to it below, so a wrapper on `concat` sees them.
let captureConcat = null;
const tfForFaceapi = Object.assign({}, tf, {
  concat: (xs, axis) => {
    const y = tf.concat(xs, axis);
    if (captureConcat && axis === 1 && Array.isArray(xs) && xs.length === 6)
      captureConcat.push({ shape: y.shape.slice(), data: Float32Array.from(y.dataSync()) });
    return y;
  },
});

const origLoad = Module._load;
Module._load = function load(request, parent, isMain) {
  if (request === '@tensorflow/tfjs') return tfForFaceapi;
  if (request === '@tensorflow/tfjs-backend-wasm') return { setWasmPaths() {} };
  return origLoad.call(this, request, parent, isMain);
};
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
Module._load = origLoad;

const NETS = {
  recognition: { cls: 'FaceRecognitionNet', file: 'face_recognition_model', size: 150 },
  landmarks68: { cls: 'FaceLandmark68Net', file: 'face_landmark_68_model', size: 112 },
  landmarks68tiny: { cls: 'FaceLandmark68TinyNet', file: 'face_landmark_68_tiny_model', size: 112 },
  ssd: { cls: 'SsdMobilenetv1', file: 'ssd_mobilenetv1_model', size: 512 },
  expression: { cls: 'FaceExpressionNet', file: 'face_expression_model', size: 112 },
  agegender: { cls: 'AgeGenderNet', file: 'age_gender_model', size: 112 },
};

function args() {
  const a = {};
  for (let i = 2; i < process.argv.length; i += 2) a[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
  for (const k of ['net', 'out']) if (!a[k]) throw new Error(`missing --${k}`);
  if (!NETS[a.net]) throw new Error(`unknown --net ${a.net} (${Object.keys(NETS).join(', ')})`);
  if (!a.input === !a.synth) throw new Error('give one of --input FILE or --synth SEED');
  a.models = a.models || 'models/faceapi';
  return a;
}

// The synthetic test image: a face-like picture from integer arithmetic only, so that C and
// JS produce identical pixels. Keep in step with synth_image() in tests/test_faceapi.c.
//   tri(t, p) = |t mod 2p - p|                                   (t >= 0)
//   background  v = 40 + 100x/W + 60y/H + 20c + tri(3x + 5y + 7c + 11s, 16) - 8
//   face        ellipse centre (W/2 + sW/20, 11H/20), semi-axes (8W/25, 21H/50):
//               v = (205,160,135)[c] - 40y/H + tri(2x + 3y + 5s, 12) - 6
//   eyes        ellipses centre (7W/20 + sW/20, 9H/20), (13W/20 + sW/20, 9H/20),
//               semi-axes (W/12, H/25): v = (45,35,30)[c]
//   mouth       ellipse centre (W/2 + sW/20, 3H/4), semi-axes (W/7, H/22): v = (150,50,60)[c]
// with integer division throughout, clamped to 0..255, later shapes painted over earlier.
function synthImage(W, H, s) {
  const div = (a, b) => Math.floor(a / b);
  const tri = (t, p) => Math.abs((t % (2 * p)) - p);
  const inEllipse = (x, y, cx, cy, a, b) => {
    const dx = x - cx, dy = y - cy;
    return dx * dx * b * b + dy * dy * a * a <= a * a * b * b;
  };
  const off = div(s * W, 20);
  const out = new Float32Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < 3; c++) {
        let v = 40 + div(100 * x, W) + div(60 * y, H) + 20 * c + tri(3 * x + 5 * y + 7 * c + 11 * s, 16) - 8;
        if (inEllipse(x, y, div(W, 2) + off, div(11 * H, 20), div(8 * W, 25), div(21 * H, 50)))
          v = [205, 160, 135][c] - div(40 * y, H) + tri(2 * x + 3 * y + 5 * s, 12) - 6;
        if (inEllipse(x, y, div(7 * W, 20) + off, div(9 * H, 20), div(W, 12), div(H, 25)) ||
            inEllipse(x, y, div(13 * W, 20) + off, div(9 * H, 20), div(W, 12), div(H, 25)))
          v = [45, 35, 30][c];
        if (inEllipse(x, y, div(W, 2) + off, div(3 * H, 4), div(W, 7), div(H, 22)))
          v = [150, 50, 60][c];
        out[(y * W + x) * 3 + c] = Math.min(255, Math.max(0, v));
      }
    }
  }
  return out;
}

async function loadNet(spec, dir) {
  const manifestPath = path.join(dir, `${spec.file}-weights_manifest.json`);
  const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
  const specs = [];
  const bufs = [];
  for (const group of manifest) {
    for (const p of group.paths) bufs.push(fs.readFileSync(path.join(dir, p)));
    specs.push(...group.weights);
  }
  const all = Buffer.concat(bufs);
  const weightMap = tf.io.decodeWeights(all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength), specs);
  const net = new faceapi[spec.cls]();
  net.loadFromWeightMap(weightMap);
  return net;
}

function write(file, arr) {
  fs.writeFileSync(file, Buffer.from(new Float32Array(arr).buffer));
}

async function main() {
  const a = args();
  await tf.setBackend('cpu');
  await tf.ready();
  const spec = NETS[a.net];
  let [W, H] = a.size ? a.size.split(',').map(Number) : [spec.size, spec.size];
  let data;
  if (a.synth !== undefined) {
    data = synthImage(W, H, Number(a.synth));
  } else {
    const raw = fs.readFileSync(a.input);
    data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  }
  if (data.length !== W * H * 3) throw new Error(`input has ${data.length} values, expected ${W}x${H}x3`);
  if (a['write-input']) write(a['write-input'], data);
  const x = tf.tensor4d(data, [1, H, W, 3], 'float32');
  const net = await loadNet(spec, a.models);
  const report = { net: a.net, faceapi: faceapi.version, backend: tf.getBackend(), outputs: [] };
  const emit = (i, y, name) => {
    write(`${a.out}.${i}.f32`, y.dataSync());
    report.outputs.push({ name, shape: y.shape });
  };
  if (a.net === 'recognition') {
    const netInput = await faceapi.toNetInput(x);
    emit(0, net.forwardInput(netInput), 'descriptor');
  } else if (a.net === 'expression') {
    const netInput = await faceapi.toNetInput(x);
    emit(0, net.forwardInput(netInput), 'expressions');
  } else if (a.net === 'agegender') {
    const netInput = await faceapi.toNetInput(x);
    const { age, gender } = net.forwardInput(netInput);
    emit(0, age, 'age');
    emit(1, gender, 'gender');
  } else if (a.net.startsWith('landmarks')) {
    const netInput = await faceapi.toNetInput(x);
    emit(0, net.runNet(netInput), 'landmarks');
  } else {
    captureConcat = [];
    const netInput = await faceapi.toNetInput(x);
    const { boxes, scores } = net.forwardInput(netInput);
    const cap = captureConcat;
    captureConcat = null;
    if (cap.length !== 2) throw new Error(`expected 2 captured prediction concats, got ${cap.length}`);
    const enc = cap.find((c) => c.shape.length === 4);
    const cls = cap.find((c) => c.shape.length === 3);
    write(`${a.out}.0.f32`, enc.data);
    report.outputs.push({ name: 'box_encodings', shape: [1, enc.shape[1], 4] });
    write(`${a.out}.1.f32`, cls.data);
    report.outputs.push({ name: 'class_logits', shape: cls.shape });
    emit(2, boxes[0], 'boxes');
    emit(3, scores[0], 'scores');
    const minConfidence = Number(a['min-confidence'] || 0.5);
    const dets = await net.locateFaces(x, { minConfidence, maxResults: 100 });
    const out = dets.map((d) => ({ score: d.score, x: d.box.x, y: d.box.y, width: d.box.width, height: d.box.height }));
    fs.writeFileSync(`${a.out}.dets.json`, `${JSON.stringify({ minConfidence, detections: out }, null, 1)}\n`);
    write(`${a.out}.4.f32`, out.flatMap((d) => [d.score, d.x, d.y, d.width, d.height]));
    report.outputs.push({ name: 'detections', shape: [out.length, 5] });
    report.detections = out.length;
  }
  console.log(JSON.stringify(report));
}

main().catch((e) => { console.error(`faceapi_oracle: ${e.stack || e.message}`); process.exit(1); });
