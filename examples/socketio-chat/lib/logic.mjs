// The chat's server-side logic, shared by both versions: in original/ it runs inside the Socket.IO server's event
// handlers; in roomlog/ it runs in the backend that reads the log. Pure functions, no I/O.

/** Words the filter refuses (original/) or flags after the fact (roomlog/). */
export const bannedWords = ["durian", "spam"];

/** The reason a chat text is refused, or null when it is fine. */
export function refusal(text) {
  if (typeof text !== "string") return "a chat message needs a text";
  const words = text.toLowerCase().split(/[^\p{L}\p{N}]+/u);
  const hit = bannedWords.find((w) => words.includes(w));
  return hit ? `the word "${hit}" is not allowed here` : null;
}

/** The bot's answer to a command (`/roll [sides]`, `/help`), or null when the text is not one. rand() is in [0, 1). */
export function answer(text, user, rand = Math.random) {
  if (typeof text !== "string" || !text.startsWith("/")) return null;
  const [cmd, arg] = text.trim().split(/\s+/);
  switch (cmd) {
    case "/roll": {
      const sides = Number.parseInt(arg ?? "6", 10);
      if (!Number.isSafeInteger(sides) || sides < 2 || sides > 1000) return "usage: /roll [sides], 2 to 1000 sides";
      return `${user} rolled ${1 + Math.floor(rand() * sides)} (1-${sides})`;
    }
    case "/help":
      return "commands: /roll [sides], /help";
    default:
      return null;
  }
}

/** The bot's user name in chat messages. */
export const botName = "bot";

/** A chat message's data as the browser sends it: {user, text}, both short strings. Returns an error or null. */
export function invalidChat(data) {
  if (data === null || typeof data !== "object") return "data must be an object {user, text}";
  if (typeof data.user !== "string" || data.user.length < 1 || data.user.length > 40) return "user must be 1 to 40 characters";
  if (typeof data.text !== "string" || data.text.length < 1 || data.text.length > 2000) return "text must be 1 to 2000 characters";
  return null;
}
