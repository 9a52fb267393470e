// A learner's solution: typed, so tsc checks it before Jest runs the tests.
export function twoFer(name: string = 'you'): string {
  return `One for ${name}, one for me.`
}
