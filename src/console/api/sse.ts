// Server-sent events over fetch (EventSource cannot send the API key header): yields each event's data.
export async function* sseData(response: Response): AsyncGenerator<string> {
  if (!response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      // Events end with a blank line; servers may use \r\n, \n or \r line ends.
      for (let end = blankLine(buffer); end; end = blankLine(buffer)) {
        const data = eventData(buffer.slice(0, end.index));
        buffer = buffer.slice(end.index + end.length);
        if (data !== undefined) yield data;
      }
    }
    const data = eventData(buffer);
    if (data !== undefined) yield data;
  } finally {
    reader.releaseLock();
  }
}

function blankLine(text: string): { index: number; length: number } | undefined {
  const match = /\r\n\r\n|\n\n|\r\r/.exec(text);
  return match ? { index: match.index, length: match[0].length } : undefined;
}

function eventData(block: string): string | undefined {
  const lines = block.split(/\r\n|\n|\r/).filter((line) => line.startsWith('data:'));
  if (lines.length === 0) return undefined;
  return lines.map((line) => line.slice(line.startsWith('data: ') ? 6 : 5)).join('\n');
}
