// The token count of what would be sent (the system instruction, the history if sent, the prompt), asked of the server shortly after typing stops.
import { useEffect, useState } from 'preact/hooks';
import { countTokens, type Content, type ModelPath } from '../api/gemini';

export function useTokenCount(model: ModelPath | undefined, contents: Content[], systemInstruction: string, delayMs = 400): number | undefined {
  const [count, setCount] = useState<number>();
  const key = JSON.stringify([contents, systemInstruction]);
  useEffect(() => {
    if (!model || contents.length === 0) {
      setCount(undefined);
      return;
    }
    const controller = new AbortController();
    const timer = setTimeout(() => {
      countTokens(model, contents, systemInstruction, controller.signal).then(setCount, () => setCount(undefined));
    }, delayMs);
    return () => {
      clearTimeout(timer);
      controller.abort();
    };
  }, [model, key]);
  return count;
}
