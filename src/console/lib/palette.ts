// Series colours: distinguishable, and each at least 4.5:1 against the white chart background.
export const palette = ['#0b57d0', '#b3261e', '#146c2e', '#7438b8'] as const;

export const colors = {
  train: palette[0],
  eval: palette[1],
} as const;

export const percent = (value: number) => `${(value * 100).toFixed(1)}%`;
