/** The model or adapter is one a format cannot hold (an architecture or tokenizer llama.cpp's GGUF mapping lacks). */
export class UnsupportedExportError extends Error {
  override name = 'UnsupportedExportError';
}
