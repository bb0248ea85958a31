// The deep merge of ConfigLayer values: mappings merge key by key, lists and scalars (null
// included) replace whatever was there. A secretRef mapping is one value: it replaces and is
// replaced whole, so a later layer can never graft a stray key into a secret reference.

export type Mapping = Record<string, unknown>;

export function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isSecretRef(value: unknown): value is { secretRef: unknown } {
  return isMapping(value) && Object.hasOwn(value, 'secretRef');
}

/** Sets an own property even for the key `__proto__`, which plain assignment would not. */
export function setOwn(target: Mapping, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else target[key] = value;
}

/** A deep copy of a YAML/JSON value (the merge never shares nodes with its inputs). */
export function cloneValue(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(cloneValue);
  if (isMapping(value)) {
    const out: Mapping = {};
    for (const key of Object.keys(value)) setOwn(out, key, cloneValue(value[key]));
    return out;
  }
  return value;
}

function mergeInto(base: Mapping, layer: Mapping): void {
  for (const key of Object.keys(layer)) {
    const next = layer[key];
    const prev = Object.hasOwn(base, key) ? base[key] : undefined;
    if (isMapping(prev) && isMapping(next) && !isSecretRef(prev) && !isSecretRef(next)) {
      mergeInto(prev, next);
    } else setOwn(base, key, cloneValue(next));
  }
}

/** Merges `layers` in order: later ones win. The result is a fresh value. */
export function mergeValues(layers: readonly Mapping[]): Mapping {
  const out: Mapping = {};
  for (const layer of layers) mergeInto(out, layer);
  return out;
}
