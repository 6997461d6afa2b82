/** Full-jitter exponential backoff: a random delay in [0, min(max, base·2^attempt)), so a fleet's clients do not
 * all come back at the same instant after a relay dies. */
export function backoff(attempt: number, base: number, max: number): number {
  return Math.random() * Math.min(max, base * 2 ** Math.min(attempt, 30));
}

/** Reports whether position a comes after b in one room's log. Positions are `partition-offset-epoch`; one from
 * another partition or epoch (a recreated topic) counts as after, so it is never dropped as a duplicate. */
export function isAfter(a: string, b: string | undefined): boolean {
  if (!b) return true;
  const x = a.split("-");
  const y = b.split("-");
  if (x[0] !== y[0] || x[2] !== y[2]) return true;
  return Number(x[1]) > Number(y[1]);
}

/** A random prefix for this client's message ids: ids are prefix-counter, unique across clients and reloads. */
export function randomPrefix(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  return c && c.randomUUID ? c.randomUUID() : Math.random().toString(36).slice(2) + Date.now().toString(36);
}
