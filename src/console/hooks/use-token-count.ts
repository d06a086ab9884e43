// The token count of what is being typed (plus the history), asked of the server shortly after typing stops.
import { useEffect, useState } from 'preact/hooks';
import { countTokens, type Content, type ModelPath } from '../api/gemini';

export function useTokenCount(model: ModelPath | undefined, contents: Content[], delayMs = 400): number | undefined {
  const [count, setCount] = useState<number>();
  const key = JSON.stringify(contents);
  useEffect(() => {
    if (!model || contents.length === 0) {
      setCount(undefined);
      return;
    }
    const controller = new AbortController();
    const timer = setTimeout(() => {
      countTokens(model, contents, controller.signal).then(setCount, () => setCount(undefined));
    }, delayMs);
    return () => {
      clearTimeout(timer);
      controller.abort();
    };
  }, [model, key]);
  return count;
}
