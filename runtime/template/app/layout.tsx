import type { ReactNode } from "react";

export const metadata = {
  title: "My app",
  description: "Built in a FullstackAgent sandbox",
};

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
