// One model's side of the chat, with each answer's token counts and time, and a mark on an answer that
// stopped at the token limit rather than ending on its own.
import { errorMessage } from '../api/http';
import type { Message } from '../hooks/use-conversation';
import { formatNumber } from '../lib/format';

export function Transcript({ title, subtitle, messages, testId }: { title: string; subtitle: string; messages: Message[]; testId: string }) {
  const busy = messages.some((m) => m.pending);
  return (
    <section class="transcript panel" data-testid={testId} aria-label={title} aria-busy={busy}>
      <h2>
        {title} <span class="muted small">{subtitle}</span>
      </h2>
      {messages.length === 0 && <p class="muted">Answers appear here.</p>}
      <ol class="messages">
        {messages.map((m) => (
          <li class={`message ${m.role}`} data-role={m.role} data-pending={m.pending ? 'true' : undefined} data-chunks={m.chunks}>
            <span class="visually-hidden">{m.role === 'user' ? 'You' : 'Model'}: </span>
            {m.error ? (
              <p class="error-text" role="alert">
                {errorMessage(m.error)}
              </p>
            ) : (
              <p class="message-text">{m.text || (m.pending ? '…' : <em class="muted">(empty answer)</em>)}</p>
            )}
            {m.role === 'model' && m.usage && !m.pending && (
              <p class="usage small" data-testid="usage">
                {formatNumber(m.usage.promptTokenCount)} prompt tokens · {formatNumber(m.usage.candidatesTokenCount)} output tokens
                {m.seconds !== undefined ? ` · ${m.seconds.toFixed(2)} s` : ''}
              </p>
            )}
            {m.role === 'model' && m.finishReason === 'MAX_TOKENS' && !m.pending && (
              <p class="stopped small" data-testid="stopped-at-limit">
                Stopped at the token limit{m.maxOutputTokens ? ` (${formatNumber(m.maxOutputTokens)} tokens)` : ''}: raise Max output tokens for a longer answer.
              </p>
            )}
          </li>
        ))}
      </ol>
    </section>
  );
}
