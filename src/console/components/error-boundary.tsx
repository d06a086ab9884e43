// A rendering bug shows its message instead of a blank page.
import { Component, type ComponentChildren } from 'preact';
import { ErrorBanner } from './error-banner';

export class ErrorBoundary extends Component<{ children?: ComponentChildren }, { error?: unknown }> {
  override state: { error?: unknown } = {};

  static override getDerivedStateFromError(error: unknown) {
    return { error };
  }

  override render() {
    if (this.state.error) {
      return (
        <section>
          <h1 tabIndex={-1}>Something went wrong</h1>
          <ErrorBanner error={this.state.error} onRetry={() => this.setState({ error: undefined })} />
        </section>
      );
    }
    return this.props.children;
  }
}
