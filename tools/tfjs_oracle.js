#!/usr/bin/env node
// TFJS numerical oracle: runs a TFJS graph model (model.json + .bin) on the CPU backend of
// @tensorflow/tfjs 4.22 (pure JS, no native download) and writes its outputs as raw
// little-endian float32 files. Used to make the golden outputs that mien's engine is tested
// against (tools/make_goldens.sh).
//
//   node tools/tfjs_oracle.js --model models/human/blazeface.json --input in.f32 \
//        --shape 1,256,256,3 --outputs Identity,Identity_1 --out /tmp/blaze
// writes /tmp/blaze.0.f32, /tmp/blaze.1.f32 and prints {"outputs":[{"name","shape"}...]}.
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const tfc = require('@tensorflow/tfjs-converter');

function args() {
  const a = {};
  for (let i = 2; i < process.argv.length; i += 2) a[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
  for (const k of ['model', 'input', 'shape', 'out']) if (!a[k]) throw new Error(`missing --${k}`);
  return a;
}

function fileHandler(modelPath) {
  return {
    load: async () => {
      const json = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
      const dir = path.dirname(modelPath);
      const specs = [];
      const bufs = [];
      for (const group of json.weightsManifest) {
        for (const p of group.paths) bufs.push(fs.readFileSync(path.join(dir, p)));
        specs.push(...group.weights);
      }
      const all = Buffer.concat(bufs);
      return {
        modelTopology: json.modelTopology,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        userDefinedMetadata: json.userDefinedMetadata,
        signature: json.signature,
        weightSpecs: specs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
      };
    },
  };
}

async function main() {
  const a = args();
  await tf.setBackend('cpu');
  const model = await tfc.loadGraphModel(fileHandler(a.model));
  const shape = a.shape.split(',').map(Number);
  const raw = fs.readFileSync(a.input);
  const data = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  if (data.length !== shape.reduce((x, y) => x * y, 1)) throw new Error('input size does not match --shape');
  const x = tf.tensor(Array.from(data), shape, 'float32');
  const names = a.outputs ? a.outputs.split(',') : model.outputNodes;
  let ys = model.execute(x, names);
  if (!Array.isArray(ys)) ys = [ys];
  const report = { model: a.model, outputs: [] };
  ys.forEach((y, i) => {
    const v = y.dataSync();
    fs.writeFileSync(`${a.out}.${i}.f32`, Buffer.from(new Float32Array(v).buffer));
    report.outputs.push({ name: names[i], shape: y.shape });
  });
  console.log(JSON.stringify(report));
}

main().catch((e) => { console.error(`tfjs_oracle: ${e.message}`); process.exit(1); });
