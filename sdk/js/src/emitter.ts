/** A minimal typed event emitter. A listener that throws does not break the client: the error is rethrown on a
 * fresh task, where the runtime reports it. */
export class Emitter<E extends object> {
  private handlers: { [K in keyof E]?: Array<(ev: E[K]) => void> } = {};

  /** Calls fn on every `name` event; returns a function that removes it. */
  on<K extends keyof E>(name: K, fn: (ev: E[K]) => void): () => void {
    (this.handlers[name] ||= []).push(fn);
    return () => this.off(name, fn);
  }

  /** Calls fn on the next `name` event only. */
  once<K extends keyof E>(name: K, fn: (ev: E[K]) => void): () => void {
    const off = this.on(name, (ev) => {
      off();
      fn(ev);
    });
    return off;
  }

  off<K extends keyof E>(name: K, fn: (ev: E[K]) => void): void {
    const list = this.handlers[name];
    if (list) this.handlers[name] = list.filter((f) => f !== fn);
  }

  /** @internal */
  emit<K extends keyof E>(name: K, ev: E[K]): void {
    for (const fn of this.handlers[name] || []) {
      try {
        fn(ev);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}
