/** Public API of onnx-prune. */
export * from './ir';
export * from './pipeline';
