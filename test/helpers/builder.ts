export * from '../../src/ir/builder';
