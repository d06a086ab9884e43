// One side of the Test page's chat: its own history with one model, answers streamed in as they come
// (or fetched whole), with each answer's token counts, time and why it ended. In single-turn mode only the
// new prompt is sent (the history stays on screen). An answer's leading whitespace is dropped: a base model
// continuing the prompt as plain text starts its first token with the space that would follow the prompt.
import { useRef, useState } from 'preact/hooks';
import { chunkText, generate, streamGenerate, type Content, type GenerationConfig, type ModelPath, type UsageMetadata } from '../api/gemini';

export interface Message {
  role: 'user' | 'model';
  text: string;
  usage?: UsageMetadata;
  seconds?: number;
  /** Stream chunks that carried text (1 for a non-streamed answer). */
  chunks?: number;
  /** Why generation ended: STOP, or MAX_TOKENS when it stopped at maxOutputTokens. */
  finishReason?: string;
  /** The maxOutputTokens the answer was asked with (what "stopped at the token limit" refers to). */
  maxOutputTokens?: number;
  error?: unknown;
  pending?: boolean;
}

export interface SendOptions {
  config: GenerationConfig;
  stream: boolean;
  /** Send only this prompt, not the turns before it. */
  singleTurn: boolean;
  systemInstruction: string;
}

/** What a prompt sends: the history (unless single-turn) and the prompt. */
export function promptContents(messages: Message[], prompt: string, singleTurn: boolean): Content[] {
  return [...(singleTurn ? [] : historyContents(messages)), { role: 'user', parts: [{ text: prompt }] }];
}

export interface Conversation {
  messages: Message[];
  busy: boolean;
  send: (prompt: string, options: SendOptions) => Promise<void>;
  clear: () => void;
}

/** The history as the API takes it: failed or empty answers are left out, with the prompt they answered. */
export function historyContents(messages: Message[]): Content[] {
  const contents: Content[] = [];
  for (let i = 0; i < messages.length; i += 2) {
    const user = messages[i];
    const model = messages[i + 1];
    if (!user || !model || model.error || !model.text) continue;
    contents.push({ role: 'user', parts: [{ text: user.text }] }, { role: 'model', parts: [{ text: model.text }] });
  }
  return contents;
}

export function useConversation(model: ModelPath | undefined): Conversation {
  const [messages, setMessages] = useState<Message[]>([]);
  const [busy, setBusy] = useState(false);
  const abort = useRef<AbortController | undefined>(undefined);

  const updateLast = (patch: (m: Message) => Message) => setMessages((all) => [...all.slice(0, -1), patch(all.at(-1)!)]);

  const send = async (prompt: string, { config, stream, singleTurn, systemInstruction }: SendOptions) => {
    if (!model) return;
    const contents = promptContents(messages, prompt, singleTurn);
    setMessages((all) => [...all, { role: 'user', text: prompt }, { role: 'model', text: '', pending: true, chunks: 0, maxOutputTokens: config.maxOutputTokens }]);
    setBusy(true);
    const controller = new AbortController();
    abort.current = controller;
    const started = performance.now();
    const elapsed = () => (performance.now() - started) / 1000;
    try {
      if (stream) {
        for await (const chunk of streamGenerate(model, contents, config, systemInstruction, controller.signal)) {
          updateLast((m) => {
            const text = m.text ? chunkText(chunk) : chunkText(chunk).trimStart();
            const finishReason = chunk.candidates?.[0]?.finishReason ?? m.finishReason;
            return { ...m, text: m.text + text, chunks: (m.chunks ?? 0) + (text ? 1 : 0), usage: chunk.usageMetadata ?? m.usage, finishReason };
          });
        }
      } else {
        const answer = await generate(model, contents, config, systemInstruction, controller.signal);
        updateLast((m) => ({ ...m, text: chunkText(answer).trimStart(), chunks: 1, usage: answer.usageMetadata, finishReason: answer.candidates?.[0]?.finishReason }));
      }
      updateLast((m) => ({ ...m, pending: false, seconds: elapsed() }));
    } catch (error) {
      if ((error as Error).name !== 'AbortError') updateLast((m) => ({ ...m, pending: false, error }));
    } finally {
      setBusy(false);
    }
  };

  const clear = () => {
    abort.current?.abort();
    setMessages([]);
  };
  return { messages, busy, send, clear };
}
