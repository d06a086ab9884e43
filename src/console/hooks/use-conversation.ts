// One side of the Test page's chat: its own history with one model, answers streamed in as they come
// (or fetched whole), with each answer's token counts and time.
import { useRef, useState } from 'preact/hooks';
import { chunkText, generate, streamGenerate, type Content, type GenerationConfig, type ModelPath, type UsageMetadata } from '../api/gemini';

export interface Message {
  role: 'user' | 'model';
  text: string;
  usage?: UsageMetadata;
  seconds?: number;
  /** Stream chunks that carried text (1 for a non-streamed answer). */
  chunks?: number;
  error?: unknown;
  pending?: boolean;
}

export interface Conversation {
  messages: Message[];
  busy: boolean;
  send: (prompt: string, config: GenerationConfig, stream: boolean) => Promise<void>;
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

  const send = async (prompt: string, config: GenerationConfig, stream: boolean) => {
    if (!model) return;
    const contents = [...historyContents(messages), { role: 'user' as const, parts: [{ text: prompt }] }];
    setMessages((all) => [...all, { role: 'user', text: prompt }, { role: 'model', text: '', pending: true, chunks: 0 }]);
    setBusy(true);
    const controller = new AbortController();
    abort.current = controller;
    const started = performance.now();
    const elapsed = () => (performance.now() - started) / 1000;
    try {
      if (stream) {
        for await (const chunk of streamGenerate(model, contents, config, controller.signal)) {
          const text = chunkText(chunk);
          updateLast((m) => ({ ...m, text: m.text + text, chunks: (m.chunks ?? 0) + (text ? 1 : 0), usage: chunk.usageMetadata ?? m.usage }));
        }
      } else {
        const answer = await generate(model, contents, config, controller.signal);
        updateLast((m) => ({ ...m, text: chunkText(answer), chunks: 1, usage: answer.usageMetadata }));
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
