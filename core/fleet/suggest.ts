// "did you mean" for near-miss keys and values.

/** Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`. */
export function editDistance(a: string, b: string): number {
  // Optimal string alignment: "percnet" is one slip from "percent", not two.
  let before = Array.from({ length: b.length + 1 }, () => 0);
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, before[j - 2]! + 1);
      row.push(d);
    }
    before = prev;
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * The closest candidate when it is close enough to be a typo (case differences count as close),
 * or when one is the other cut short or run on (`pollInterval` for `pollIntervalSeconds`).
 */
export function didYouMean(input: string, candidates: readonly string[]): string | undefined {
  const lower = input.toLowerCase();
  const allowed = Math.max(1, Math.min(3, Math.floor(input.length / 3)));
  // A prefix match ranks just behind every real typo.
  const prefixScore = allowed + 0.5;
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    if (c === input) continue;
    const cl = c.toLowerCase();
    let score = cl === lower ? 0 : editDistance(lower, cl);
    if (
      score > allowed &&
      Math.min(lower.length, cl.length) >= 4 &&
      (cl.startsWith(lower) || lower.startsWith(cl))
    )
      score = prefixScore;
    if (score < bestScore) {
      best = c;
      bestScore = score;
    }
  }
  return bestScore <= prefixScore ? best : undefined;
}
