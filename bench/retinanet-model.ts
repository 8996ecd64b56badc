/**
 * A RetinaNet-shaped detector built in code (bench/analysis-scale.ts, test/analysis-scale.test.ts), in the
 * pattern of a torchvision `retinanet_resnet50_fpn` export with a fixed input size:
 *  - backbone: a ResNet (stem conv 7x7/2 + BN + ReLU + MaxPool, bottleneck stages with 1x1 projection shortcuts);
 *  - FPN on C3..C5: 1x1 lateral convs, nearest 2x Resize top-down + Add, 3x3 output convs, then P6 (3x3/2 conv
 *    on P5) and P7 (3x3/2 conv on ReLU(P6)) as LastLevelP6P7 — `levels` pyramid levels in all (3..5);
 *  - heads: a classification tower (`towerConvs` × 3x3 conv + ReLU, then `cls_logits` with A·K channels) and a
 *    regression tower (… then `bbox_pred` with A·4 channels), the same weights applied to every level (the
 *    exporter writes one Conv node per level, all reading the same initializers);
 *  - with `concat` (RetinaNet): each level's head output [N, A·K, H, W] goes through
 *    view(N, -1, K, H, W).permute(0, 3, 4, 1, 2).reshape(N, -1, K) (Reshape, Transpose, Reshape with constant
 *    shapes, as constant folding leaves them for a fixed input size) and the levels are concatenated on axis 1
 *    into one graph output per head (`cls_logits` [N, ΣH·W·A, K], `bbox_regression` [N, ΣH·W·A, 4]);
 *    without it (the twin used as the reference), every level's raw head outputs are graph outputs.
 */
import { DataType, attr, graph, modelBytes, tensor, valueInfo } from '../src/ir/builder';
import { GraphBuilder } from './scale-models';

const F = DataType.FLOAT;

export interface RetinaSpec {
  /** Input height = width (fixed: the model has no symbolic dims). */
  size: number;
  /** Bottleneck blocks per stage (4 stages, strides 4, 8, 16, 32). */
  blocks: number[];
  /** Width of the first stage's bottleneck (ResNet-50: 64; stage s has width·2^s, expansion 4). */
  width: number;
  /** FPN channels. */
  fpn: number;
  /** Anchors per location (A). */
  anchors: number;
  /** Classes (K). */
  classes: number;
  /** Convs in each head tower before the predictor. */
  towerConvs: number;
  /** Pyramid levels P3..P7 (3 to 5). */
  levels: number;
  /** Reshape and concatenate the head outputs across levels (RetinaNet) or output them raw (the twin). */
  concat: boolean;
}

/**
 * Bench size: a ResNet-50 backbone at 320x320 with 9 anchors and 91 classes: the concatenated classification
 * output holds 2134 locations · 9 · 91 = 1.75 M elements, as in the torchvision export of issue 10.
 */
export const RETINA_BENCH: RetinaSpec = {
  size: 320, blocks: [3, 4, 6, 3], width: 64, fpn: 256, anchors: 9, classes: 91, towerConvs: 4, levels: 5, concat: true,
};

/** Test size: small enough to analyze in well under a second. */
export const RETINA_SMALL: RetinaSpec = {
  size: 64, blocks: [1, 1, 1, 1], width: 4, fpn: 8, anchors: 3, classes: 5, towerConvs: 1, levels: 5, concat: true,
};

/** Spatial size after a conv / pool with kernel k, stride s, padding p. */
const out = (h: number, k: number, s: number, p: number) => Math.floor((h + 2 * p - k) / s) + 1;

/** Location counts H·W of the pyramid levels of a spec (P3 first). */
export function levelSizes(spec: RetinaSpec): number[] {
  let h = out(out(spec.size, 7, 2, 3), 3, 2, 1); // stem conv, max pool: stride 4
  const hs: number[] = [];
  for (let s = 1; s < 4; s++) { h = out(h, 3, 2, 1); hs.push(h); } // C3, C4, C5
  while (hs.length < spec.levels) hs.push(out(hs[hs.length - 1], 3, 2, 1)); // P6, P7
  return hs.slice(0, spec.levels).map((x) => x * x);
}

export function retinaNet(spec: RetinaSpec): Uint8Array {
  if (spec.levels < 3 || spec.levels > 5) throw new Error('retinaNet: levels must be 3, 4 or 5');
  const b = new GraphBuilder();
  const key = (scope: string) => scope.slice(1).replace(/\//g, '.');
  const conv = (scope: string, x: string, cin: number, cout: number, k: number, stride: number, w?: string, bias?: string): string => {
    const weight = w ?? b.weight(`${key(scope)}.weight`, [cout, cin, k, k], Math.sqrt(3 / (cin * k * k)));
    const ins = [x, weight];
    if (bias !== undefined) ins.push(bias);
    const p = (k - 1) / 2;
    return b.op(scope, 'Conv', ins, [
      attr.ints('dilations', [1, 1]), attr.int('group', 1), attr.ints('kernel_shape', [k, k]),
      attr.ints('pads', [p, p, p, p]), attr.ints('strides', [stride, stride]),
    ]);
  };
  const bn = (scope: string, x: string, c: number): string => {
    const k = key(scope);
    return b.op(scope, 'BatchNormalization', [
      x, b.weight(`${k}.weight`, [c], 0.1, 1), b.weight(`${k}.bias`, [c], 0.1),
      b.weight(`${k}.running_mean`, [c], 0.1), b.weight(`${k}.running_var`, [c], 0.25, 0.75),
    ], [attr.float('epsilon', 1e-5), attr.float('momentum', 0.9)]);
  };
  const relu = (scope: string, x: string) => b.op(scope, 'Relu', [x]);

  // Backbone.
  const B = '/backbone/body';
  let x = relu(`${B}/relu`, bn(`${B}/bn1`, conv(`${B}/conv1`, 'images', 3, spec.width, 7, 2), spec.width));
  x = b.op(`${B}/maxpool`, 'MaxPool', [x], [attr.int('ceil_mode', 0), attr.ints('kernel_shape', [3, 3]), attr.ints('pads', [1, 1, 1, 1]), attr.ints('strides', [2, 2])]);
  let cin = spec.width;
  const c: { name: string; channels: number }[] = [];
  spec.blocks.forEach((n, s) => {
    const width = spec.width << s;
    for (let i = 0; i < n; i++) {
      const L = `${B}/layer${s + 1}/layer${s + 1}.${i}`;
      const stride = i === 0 && s > 0 ? 2 : 1;
      const h1 = relu(`${L}/relu`, bn(`${L}/bn1`, conv(`${L}/conv1`, x, cin, width, 1, 1), width));
      const h2 = relu(`${L}/relu_1`, bn(`${L}/bn2`, conv(`${L}/conv2`, h1, width, width, 3, stride), width));
      const h3 = bn(`${L}/bn3`, conv(`${L}/conv3`, h2, width, width * 4, 1, 1), width * 4);
      const short = i === 0 ? bn(`${L}/downsample/1`, conv(`${L}/downsample/0`, x, cin, width * 4, 1, stride), width * 4) : x;
      x = relu(`${L}/relu_2`, b.op(L, 'Add', [h3, short]));
      cin = width * 4;
    }
    if (s > 0) c.push({ name: x, channels: cin });
  });

  // FPN: P3..P5 top-down, then P6, P7.
  const P = '/backbone/fpn';
  const ch = spec.fpn;
  const bias = (scope: string, n: number) => b.weight(`${key(scope)}.bias`, [n], 0.02);
  const lateral = c.map((ci, i) => conv(`${P}/inner_blocks.${i}/0`, ci.name, ci.channels, ch, 1, 1, undefined, bias(`${P}/inner_blocks.${i}/0`, ch)));
  const up = 'fpn.upsample.scales';
  b.inits.push(tensor(up, F, [4], Float32Array.of(1, 1, 2, 2)));
  const inner: string[] = [lateral[2]];
  for (let i = 1; i >= 0; i--) {
    const upsampled = b.op(P, 'Resize', [inner[0], '', up], [
      attr.string('coordinate_transformation_mode', 'asymmetric'), attr.string('mode', 'nearest'), attr.string('nearest_mode', 'floor'),
    ]);
    inner.unshift(b.op(P, 'Add', [lateral[i], upsampled]));
  }
  const pyramid = inner.map((t, i) => conv(`${P}/layer_blocks.${i}/0`, t, ch, ch, 3, 1, undefined, bias(`${P}/layer_blocks.${i}/0`, ch)));
  if (spec.levels > 3) pyramid.push(conv(`${P}/extra_blocks/p6`, pyramid[2], ch, ch, 3, 2, undefined, bias(`${P}/extra_blocks/p6`, ch)));
  if (spec.levels > 4) pyramid.push(conv(`${P}/extra_blocks/p7`, relu(`${P}/extra_blocks`, pyramid[3]), ch, ch, 3, 2, undefined, bias(`${P}/extra_blocks/p7`, ch)));

  // Heads: one set of weights, one Conv node per level.
  const tower = (name: string, predictor: string, outCh: number) => {
    const ws = Array.from({ length: spec.towerConvs }, (_, j) => ({
      w: b.weight(`head.${name}.conv.${j}.0.weight`, [ch, ch, 3, 3], Math.sqrt(3 / (ch * 9))),
      b: b.weight(`head.${name}.conv.${j}.0.bias`, [ch], 0.02),
    }));
    const pw = b.weight(`head.${name}.${predictor}.weight`, [outCh, ch, 3, 3], Math.sqrt(3 / (ch * 9)));
    const pb = b.weight(`head.${name}.${predictor}.bias`, [outCh], 0.02);
    return pyramid.map((p) => {
      let h = p;
      ws.forEach((cw, j) => { h = relu(`/head/${name}/conv.${j}/conv.${j}.1`, conv(`/head/${name}/conv.${j}/conv.${j}.0`, h, ch, ch, 3, 1, cw.w, cw.b)); });
      return conv(`/head/${name}/${predictor}`, h, ch, outCh, 3, 1, pw, pb);
    });
  };
  const A = spec.anchors, K = spec.classes;
  const cls = tower('classification_head', 'cls_logits', A * K);
  const box = tower('regression_head', 'bbox_reg', A * 4);
  const sides = levelSizes(spec).map((n) => Math.round(Math.sqrt(n)));
  const outputs = [];
  if (spec.concat) {
    const flatten = (name: string, heads: string[], k: number): string => {
      const scope = `/head/${name}`;
      const parts = heads.map((t, l) => {
        const v = b.op(scope, 'Reshape', [t, b.constI64(scope, [1, -1, k, sides[l], sides[l]])], [attr.int('allowzero', 0)]);
        const pm = b.op(scope, 'Transpose', [v], [attr.ints('perm', [0, 3, 4, 1, 2])]);
        return b.op(scope, 'Reshape', [pm, b.constI64(scope, [1, -1, k])], [attr.int('allowzero', 0)]);
      });
      return b.op(scope, 'Concat', parts, [attr.int('axis', 1)]);
    };
    const total = levelSizes(spec).reduce((a, n) => a + n, 0) * A;
    const names = [flatten('classification_head', cls, K), flatten('regression_head', box, 4)];
    // The graph outputs carry the torchvision names.
    const rename = new Map([[names[0], 'cls_logits'], [names[1], 'bbox_regression']]);
    for (const n of b.nodes) n.output = n.output.map((o) => rename.get(o) ?? o);
    outputs.push(valueInfo('cls_logits', F, [1, total, K]), valueInfo('bbox_regression', F, [1, total, 4]));
  } else {
    cls.forEach((t, l) => outputs.push(valueInfo(t, F, [1, A * K, sides[l], sides[l]])));
    box.forEach((t, l) => outputs.push(valueInfo(t, F, [1, A * 4, sides[l], sides[l]])));
  }
  return modelBytes(graph({
    name: 'torch_jit', nodes: b.nodes, initializers: b.inits,
    inputs: [valueInfo('images', F, [1, 3, spec.size, spec.size])], outputs,
  }), { opset: 17, producerName: 'pytorch', producerVersion: '2.1.0' });
}
