/**
 * Jest (before Node 24.9) cannot require an ES module. @platformatic/kafka and its @platformatic
 * helpers ship ESM only (Node itself loads them through require(esm)): under jest, compile them to
 * CommonJS with swc, turning import.meta.url (which CommonJS has no syntax for) into the file URL.
 */
const { createTransformer } = require('@swc/jest');

const swc = createTransformer({ jsc: { parser: { syntax: 'ecmascript' }, target: 'es2022' }, module: { type: 'commonjs' } });
const metaUrl = '("file://" + __filename)'; // no require(): a module may declare its own `require`

// Where jest loads the module as ESM itself (Node ≥ 24.9 with require(esm)), swc keeps it ESM and
// import.meta.url stays as it is; only the CommonJS output needs the replacement.
const prepare = (source, options) => (options.supportsStaticESM ? source : source.replaceAll('import.meta.url', metaUrl));

module.exports = {
  process(source, path, options) {
    return swc.process(prepare(source, options), path, options);
  },
  getCacheKey(source, path, options) {
    return swc.getCacheKey(prepare(source, options), path, options);
  },
};
