// The few host functions the client uses, present in browsers and Node alike. Declared here so that the
// package needs neither the DOM library nor @types/node.
declare function setTimeout(fn: () => void, ms?: number): unknown;
declare function clearTimeout(id: unknown): void;
declare function setInterval(fn: () => void, ms?: number): unknown;
declare function clearInterval(id: unknown): void;
declare class TextEncoder {
  encode(s: string): Uint8Array;
}
